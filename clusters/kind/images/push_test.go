package images

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

func TestRemoteRef(t *testing.T) {
	for _, tc := range []struct{ registry, want, err string }{
		{"127.0.0.1:5000", "127.0.0.1:5000/agent:abc", ""},
		{"registry.example.org/team/chaosloop/", "registry.example.org/team/chaosloop/agent:abc", ""},
		{"localhost/x", "localhost/x/agent:abc", ""},
		{"myteam", "", "want HOST[:PORT][/PATH]"},
		{"registry.example.org/UPPER", "", "registry"},
	} {
		got, err := RemoteRef(tc.registry, Repository+"agent:abc")
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.registry)
			continue
		}
		require.NoError(t, err, tc.registry)
		require.Equal(t, tc.want, got)
	}
	_, err := RemoteRef("127.0.0.1:5000", "debian:bookworm")
	require.ErrorContains(t, err, "not a chaosloop image")
	_, err = (&Builder{Cache: t.TempDir()}).Push(context.Background(), "127.0.0.1:5000", "nope")
	require.ErrorContains(t, err, `no image "nope": chaosloop's images are etcd, mariadb, redis, zookeeper, kafka, docstore, worker`)
}

// TestPushToARegistry pushes the agent's image (built of a chaosloop
// binary built here) and the etcd engine's to a real registry, Debian's
// docker-registry (the CNCF distribution registry) on loopback: the
// registry serves each under its tag with the digest Push reported, and
// pushing again is the same digest.
func TestPushToARegistry(t *testing.T) {
	kindtest.Daemon(t)
	enginetest.RequireInstalled(t, func(ctx context.Context) error { return install.Apt(ctx, enginetest.Log(t), "docker-registry") },
		"docker-registry", "go")
	ctx := t.Context()
	registry := startRegistry(t)
	bin := filepath.Join(t.TempDir(), "chaosloop")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	b := &Builder{Cache: kindtest.Cache, Log: enginetest.Log(t), AgentBinary: bin, Progress: func(step, stage, detail string) {
		t.Logf("%-16s %-8s %s", step, stage, detail)
	}}
	_, err = b.Push(ctx, registry, AgentImage)
	require.ErrorContains(t, err, "build them first: chaosloop images build", "an image not built is not pushed")
	_, err = b.BuildAgent(ctx, bin)
	require.NoError(t, err)
	_, err = b.BuildEngine(ctx, "etcd")
	require.NoError(t, err)

	start := time.Now()
	pushed, err := b.Push(ctx, registry, AgentImage, "etcd")
	require.NoError(t, err)
	t.Logf("pushed %d images in %s", len(pushed), time.Since(start).Round(time.Millisecond))
	require.Len(t, pushed, 2)
	for _, p := range pushed {
		require.Equal(t, p.Digest, servedDigest(t, p.Remote), "the registry serves %s as pushed", p.Remote)
	}
	again, err := b.Push(ctx, registry, AgentImage, "etcd")
	require.NoError(t, err)
	require.Equal(t, pushed, again, "pushing again changes nothing")
}

// servedDigest asks the registry (distribution's API, plain HTTP on
// loopback) for the digest of a tag's manifest.
func servedDigest(t *testing.T, remote string) string {
	ref, err := name.NewTag(remote, name.Insecure)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodHead,
		fmt.Sprintf("http://%s/v2/%s/manifests/%s", ref.RegistryStr(), ref.RepositoryStr(), ref.TagStr()), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, remote)
	return resp.Header.Get("Docker-Content-Digest")
}

// startRegistry runs docker-registry on a free loopback port, its storage
// under the test's evidence (kept if the test fails), killed by PID at
// cleanup; it returns HOST:PORT once /v2/ answers.
func startRegistry(t *testing.T) string {
	ev := enginetest.NewEvidence(t)
	dir := ev.WorkDir("registry")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	conf := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil,
		"version: 0.1\nlog: {level: info}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: %q}\n",
		filepath.Join(dir, "data"), addr), 0o644))
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	require.NoError(t, err)
	cmd := exec.Command("docker-registry", "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the registry answers on %s", addr)
	return addr
}
