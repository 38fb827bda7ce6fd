// Package bmctest runs real BMC protocol servers on loopback for tests:
// sushy-tools' Redfish emulator (its fake driver: no libvirt or cloud
// behind it) and OpenIPMI's ipmi_sim. Each installs on first use (PyPI,
// Debian) and is killed by PID at cleanup; its logs and configuration are
// kept with the test's evidence when the test fails. Either can power a
// docker container (StartContainer) as a BMC powers its server.
package bmctest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// startWait bounds a server's start: sushy-emulator imports Flask and
// its drivers in about 2 s on an idle machine, ipmi_sim in milliseconds.
const startWait = 60 * time.Second

// Server is a BMC emulator this test started.
type Server struct {
	// Addr is what an inventory's address field says for it.
	Addr string
	// Dir holds its configuration and log.
	Dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs name in dir with its output in dir/log, and kills it by PID
// at cleanup (registered after the evidence directory's, so the log is
// saved after the process is gone).
func start(tb testing.TB, dir, name string, args ...string) *Server {
	tb.Helper()
	logf, err := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			tb.Errorf("%s (pid %d) still running 10 s after SIGKILL", name, cmd.Process.Pid)
		}
		logf.Close()
	})
	return &Server{Dir: dir, cmd: cmd, exited: exited}
}

// waitUntil polls ready until it holds, failing the test (with the log's
// tail) if the server exits or startWait passes.
func (s *Server) waitUntil(tb testing.TB, ready func() bool) {
	tb.Helper()
	deadline := time.Now().Add(startWait)
	for !ready() {
		select {
		case <-s.exited:
			tb.Fatalf("%s exited while starting:\n%s", s.cmd.Path, s.LogTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not come up within %s:\n%s", s.cmd.Path, startWait, s.LogTail())
		}
	}
}

// LogTail is the last lines of the server's log, for a failure message.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, filepath.Base(s.cmd.Path)+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// freePort is a loopback port nothing listens on now, for network
// ("tcp" or "udp"). The server binds it a moment later; a clash fails its
// start, which the test reports.
func freePort(tb testing.TB, network string) int {
	tb.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// workDir is a scratch directory kept with the test's evidence on failure.
func workDir(tb testing.TB, name string) string {
	tb.Helper()
	return enginetest.NewEvidence(tb).WorkDir(name)
}

// require installs with install (in CI) and checks tool, as every lab
// test does: a laptop without root skips, CI fails.
func require(tb testing.TB, install func(context.Context, *slog.Logger) error, tool string) {
	tb.Helper()
	log := enginetest.Log(tb)
	enginetest.RequireInstalled(tb, func(ctx context.Context) error {
		if err := install(ctx, log); err != nil {
			return fmt.Errorf("installing %s: %w", filepath.Base(tool), err)
		}
		return nil
	}, tool)
}
