package k8sbin

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

func TestKeysNameInputs(t *testing.T) {
	k := kubernetes()
	require.Equal(t, k.key("go1.26.8"), k.key("go1.26.8"), "a key is stable")
	require.NotEqual(t, k.key("go1.26.8"), k.key("go1.27.0"), "the toolchain is an input")
	e := etcd()
	e.files["main.go"] += "\n"
	require.NotEqual(t, etcd().key("go1.26.8"), e.key("go1.26.8"), "a build module file is an input")
	require.Contains(t, embedded("kubernetes.mod"), "k8s.io/kubelet => k8s.io/kubelet v0.34.4")
}

func TestOutArgs(t *testing.T) {
	require.Equal(t, []string{"build", "-o", "/c/k/", "x"}, outArgs([]string{"build", "-o", "OUT/", "x"}, "/c/k"))
	require.Equal(t, []string{"-o", "/c/k/etcd"}, outArgs([]string{"-o", "OUT/etcd"}, "/c/k"))
}

func TestLdflagsStampTheVersion(t *testing.T) {
	f := kubernetesLdflags()
	require.Contains(t, f, "-X k8s.io/component-base/version.gitVersion=v1.34.4")
	require.Contains(t, f, "-X k8s.io/client-go/pkg/version.gitMinor=34")
}

// TestBuild builds every component into the machine's cache (8-12 minutes
// the first time on two cores, nothing after), and checks a second Build
// is a pure cache hit.
func TestBuild(t *testing.T) {
	enginetest.RequireInstalled(t, nil, "go", "gcc")
	dir := os.Getenv("CHAOSLOOP_KIND_BIN_CACHE")
	if dir == "" {
		dir = "/var/cache/chaosloop/kind/bin"
	}
	b := &Builder{Dir: dir, Log: enginetest.Log(t), Progress: func(step, stage, detail string) {
		t.Logf("%s: %s %s", step, stage, detail)
	}}
	start := time.Now()
	set, err := b.Build(context.Background())
	require.NoError(t, err)
	t.Logf("first Build: %s", time.Since(start).Round(time.Second))
	for _, name := range append(KubernetesCommands, "etcd", "coredns", "pause") {
		require.FileExists(t, set[name].Path, name)
	}
	start = time.Now()
	again, err := b.Build(context.Background())
	require.NoError(t, err)
	require.Equal(t, set, again)
	t.Logf("cached Build: %s", time.Since(start).Round(time.Millisecond))
}
