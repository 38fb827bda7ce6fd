package bmctest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
)

// NodeImage is the image of StartContainer: one static program that
// sleeps, built by the first test that needs it and kept by the daemon.
const NodeImage = "chaosloop-test/bmc-node:1"

// sleepProgram is NodeImage's only file. A container's first process
// ignores the signals it has no handler for, SIGTERM among them, but not
// the SIGKILL of a power-off.
const sleepProgram = `package main

import "time"

func main() { time.Sleep(1<<63 - 1) }
`

// dockerWait bounds each docker command of a test (a build, a run, a
// removal) on a machine busy with labs.
const dockerWait = 2 * time.Minute

// StartContainer runs a throwaway container of NodeImage that stands for
// a kind node, and removes it (by its name) at cleanup. It makes sure a
// Docker daemon answers first (kindtest.Daemon: one that runs, or one it
// starts and stops at cleanup), so the test binary's TestMain must be
// kindtest.Main. The container has no network: powering it needs none,
// and it adds nothing to the daemon's bridge beside a lab's nodes.
func StartContainer(tb testing.TB) string {
	tb.Helper()
	kindtest.Daemon(tb)
	ctx, cancel := context.WithTimeout(context.Background(), dockerWait)
	defer cancel()
	if !docker.ImageExists(ctx, NodeImage) {
		buildNodeImage(ctx, tb)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "chaosloop-bmctest-" + hex.EncodeToString(b)
	if _, err := docker.Run(ctx, "run", "--detach", "--name", name, "--network", "none", "--label", "chaosloop.test=bmctest", NodeImage); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dockerWait)
		defer cancel()
		if _, err := docker.Run(ctx, "rm", "--force", name); err != nil {
			tb.Errorf("removing the test's container: %v", err)
		}
	})
	return name
}

// buildNodeImage compiles sleepProgram (static) and imports it as
// NodeImage: no registry, no base image.
func buildNodeImage(ctx context.Context, tb testing.TB) {
	tb.Helper()
	dir := tb.TempDir()
	writeFile(tb, filepath.Join(dir, "go.mod"), "module sleep\n\ngo 1.24\n")
	writeFile(tb, filepath.Join(dir, "main.go"), sleepProgram)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s", "-o", "sleep", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building %s's program: %v\n%s", NodeImage, err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "sleep"))
	if err != nil {
		tb.Fatal(err)
	}
	var layer bytes.Buffer
	w := tar.NewWriter(&layer)
	if err := w.WriteHeader(&tar.Header{Name: "sleep", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(bin); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	if _, err := docker.RunReader(ctx, &layer, "import", "--change", `CMD ["/sleep"]`, "-", NodeImage); err != nil {
		tb.Fatal(err)
	}
}

// ContainerState is what docker inspect says of a container's process.
type ContainerState struct {
	Running bool
	// ExitCode is its last exit's: 137 (128 + 9) after a SIGKILL.
	ExitCode int
}

// InspectContainer reads a container's state.
func InspectContainer(tb testing.TB, name string) ContainerState {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerWait)
	defer cancel()
	out, err := docker.Run(ctx, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
	if err != nil {
		tb.Fatal(err)
	}
	running, code, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		tb.Fatalf("docker inspect %s: %q", name, out)
	}
	return ContainerState{Running: running == "true", ExitCode: n}
}

// dockerPower is the power functions of writeChassis for a chassis that
// is container: on while it runs. Power-off is a power cut, SIGKILL, as
// the kind backend's own power-off; power-on starts the container. The
// docker CLI is found now, so the program does not depend on the
// emulator's PATH.
func dockerPower(tb testing.TB, container string) string {
	tb.Helper()
	cli, err := exec.LookPath("docker")
	if err != nil {
		tb.Fatal(err)
	}
	// ipmi_sim runs a request again for each retransmission of it (go-ipmi
	// resends after 1 s, and a docker start can take that long on a busy
	// machine): both are idempotent.
	return fmt.Sprintf(`docker=%q
c=%q
power() {
	r=$("$docker" inspect --format '{{.State.Running}}' "$c") || return 1
	case $r in
	true) echo 1 ;;
	false) echo 0 ;;
	*) echo "docker inspect $c: $r" >&2; return 1 ;;
	esac
}
power_off() { "$docker" kill --signal KILL "$c" >/dev/null || [ "$(power)" = 0 ]; }
power_on() { "$docker" start "$c" >/dev/null; }
`, cli, container)
}
