package images

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

func TestMain(m *testing.M) { kindtest.Main(m) }

func TestKindVersionIsTheOneInGoMod(t *testing.T) {
	b, err := os.ReadFile("../../../go.mod")
	require.NoError(t, err)
	require.Contains(t, string(b), "sigs.k8s.io/kind "+KindVersion)
}

func TestKindFilesComeFromTheModule(t *testing.T) {
	files, err := kindFiles(context.Background())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o755), files["usr/local/bin/entrypoint"].mode)
	require.Contains(t, files["etc/systemd/system/kubelet.service"].content, "/usr/bin/kubelet")
	require.NotContains(t, files, "etc/containerd/config.toml", "ours replaces kind's")
}

func TestControlPlaneImagesHaveKubeadmsTags(t *testing.T) {
	bins := k8sbin.Set{}
	var refs []string
	for _, im := range controlPlaneImages(bins) {
		refs = append(refs, im.ref)
		require.True(t, strings.HasSuffix(im.fileName(), ".tar"))
	}
	require.Equal(t, []string{
		"registry.k8s.io/kube-apiserver:v1.34.4", "registry.k8s.io/kube-controller-manager:v1.34.4",
		"registry.k8s.io/kube-scheduler:v1.34.4", "registry.k8s.io/kube-proxy:v1.34.4",
		"registry.k8s.io/etcd:3.6.5-0", "registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1",
	}, refs)
}

func TestKeysFollowContent(t *testing.T) {
	a := rootfs{name: "x", variant: "minbase", include: []string{"systemd"}, overlay: map[string]file{"etc/a": {"1", 0o644}}}
	b := a
	b.overlay = map[string]file{"etc/a": {"1", 0o755}}
	require.NotEqual(t, a.key(), b.key(), "a mode is content")
	require.Equal(t, a.key(), a.key())
	require.NotEqual(t, hashOf("ab", "c"), hashOf("a", "bc"))
}

// TestBuild builds every image (the first time: the Kubernetes binaries,
// two Debian root filesystems, the node image), then again: a cache hit.
func TestBuild(t *testing.T) {
	kindtest.Daemon(t)
	enginetest.RequireInstalled(t, nil, "go", "gcc")
	b := &Builder{Cache: kindtest.Cache, Log: enginetest.Log(t), Progress: func(step, stage, detail string) {
		t.Logf("%-22s %-8s %s", step, stage, detail)
	}}
	built, err := b.Build(context.Background())
	require.NoError(t, err)
	t.Logf("first Build: %s, node image %s", built.Took.Round(time.Second), built.Node)
	again, err := b.Build(context.Background())
	require.NoError(t, err)
	require.Equal(t, built.Node, again.Node)
	t.Logf("cached Build: %s", again.Took.Round(time.Millisecond))
	require.Less(t, again.Took, 30*time.Second, "a cache hit builds nothing")
}
