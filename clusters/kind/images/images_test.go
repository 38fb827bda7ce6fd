package images

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
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

func TestEngineImagesTakeTheEnginesPackages(t *testing.T) {
	b := &Builder{Cache: "/var/cache/chaosloop/kind", Log: enginetest.Log(t)}
	names := map[string]EngineImage{}
	for _, e := range b.Engines() {
		names[e.Name] = e
		require.True(t, strings.HasPrefix(e.Tag(), Repository+"engine-"+e.Name+":"), e.Tag())
		require.NotEmpty(t, e.Checks)
	}
	require.Len(t, names, 7)
	require.Equal(t, galera.Packages, names["mariadb"].packages)
	require.Contains(t, names["docstore"].packages, docstore.Packages[0])
	require.Equal(t, "/var/cache/chaosloop/kafka/"+kafka.DefaultVersion+"/lib", names["kafka"].extras[0].dir,
		"the jars where the kafka engine looks for them")
	other := &Builder{Cache: "/srv/kind", Log: enginetest.Log(t)}
	for _, e := range other.Engines() {
		if e.Name == "kafka" {
			require.NotEqual(t, names["kafka"].Tag(), e.Tag(), "another cache path is another image")
		}
	}
}

// TestEngineImages builds each engine's image (when missing) and runs its
// engine's binaries in a container.
func TestEngineImages(t *testing.T) {
	kindtest.Daemon(t)
	enginetest.RequireInstalled(t, nil, "go")
	b := &Builder{Cache: kindtest.Cache, Log: enginetest.Log(t), Progress: func(step, stage, detail string) {
		t.Logf("%-24s %-8s %s", step, stage, detail)
	}}
	ctx := context.Background()
	want := map[string][]string{
		"etcd": {"3.4.23"}, "mariadb": {"10.11.19", "libgalera_smm.so"}, "redis": {"v=7.0.15", "v=7.0.15"},
		"zookeeper": {"3.8.0"}, "kafka": {kafka.DefaultVersion, kafka.DefaultZooKeeperVersion},
		"docstore":  {docstore.FerretDBVersion, "15.18", "patroni 3.0.2", "3.4.23"},
		WorkerImage: {"GLIBC 2.36"},
	}
	for _, e := range b.Engines() {
		start := time.Now()
		tag, err := b.ensureEngine(ctx, e)
		require.NoError(t, err, e.Name)
		size, err := docker.Run(ctx, "image", "inspect", "--format", "{{.Size}}", tag)
		require.NoError(t, err)
		t.Logf("%s: %s in %s, %s bytes", e.Name, tag, time.Since(start).Round(time.Second), strings.TrimSpace(string(size)))
		for i, check := range e.Checks {
			out, err := docker.Run(ctx, append([]string{"run", "--rm", "--network", "none", tag}, check...)...)
			require.NoError(t, err, "%s: %v", e.Name, check)
			t.Logf("%s: %s", e.Name, strings.TrimSpace(string(out)))
			require.Contains(t, string(out), want[e.Name][i], "%v", check)
		}
	}
}
