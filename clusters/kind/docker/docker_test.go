package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
)

func TestMain(m *testing.M) { kindtest.Main(m) }

// capsProgram prints the effective capabilities of its process.
const capsProgram = `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "CapEff:") {
			fmt.Println(l)
		}
	}
}
`

// TestPrivilegedContainerRuns is what kind needs of the daemon: a
// --privileged container starts on this VM (its bounding set lacks
// CAP_SYS_RESOURCE) and gets every capability the VM has, and the
// daemon's addresses come from 198.19.240.0/20.
func TestPrivilegedContainerRuns(t *testing.T) {
	kindtest.Daemon(t)
	ctx := context.Background()
	image := "chaosloop-test/caps:latest"
	require.NoError(t, importImage(ctx, t, image))
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--privileged", image, "/caps").CombinedOutput()
	require.NoError(t, err, "%s", out)
	missing, err := docker.MissingCaps()
	require.NoError(t, err)
	t.Logf("missing here %v; in the container: %s", missing, out)
	eff, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "CapEff:")), 16, 64)
	require.NoError(t, err)
	require.NotZero(t, eff&(1<<21), "a privileged container has CAP_SYS_ADMIN")
	require.Zero(t, eff&(1<<24), "and not the CAP_SYS_RESOURCE the VM lacks")

	out, err = exec.CommandContext(ctx, "docker", "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}").CombinedOutput()
	require.NoError(t, err, "%s", out)
	if started, _ := (&docker.Daemon{StateDir: kindtest.StateDir}).Started(); started != 0 {
		require.Equal(t, "198.19.250.0/24", strings.TrimSpace(string(out)))
	}
}

// importImage builds a static program into an image of that one file.
func importImage(ctx context.Context, t *testing.T, image string) error {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module caps\n\ngo 1.24\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(capsProgram), 0o644))
	build := exec.CommandContext(ctx, "go", "build", "-o", "caps", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "caps"))
	require.NoError(t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "caps", Mode: 0o755, Size: int64(len(bin))}))
	_, err = tw.Write(bin)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	imp := exec.CommandContext(ctx, "docker", "import", "-", image)
	imp.Stdin = &buf
	out, err := imp.CombinedOutput()
	if err != nil {
		t.Logf("docker import: %s", out)
	}
	return err
}
