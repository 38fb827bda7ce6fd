// Package kindtest holds what the kind backend's tests share: a test
// binary that serves as the OCI runtime wrapper, and a Docker daemon that
// is stopped at the end when the test started it.
package kindtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// StateDir is the daemon state of tests: the one chaosloop uses, so that
// images built by one test run are found by the next.
const StateDir = "/var/lib/chaosloop/docker"

// Cache is the image cache of tests: the one chaosloop uses, for the same
// reason.
const Cache = "/var/cache/chaosloop/kind"

// RuntimeArg makes the test binary act as `chaosloop oci-runtime`.
const RuntimeArg = "oci-runtime"

// Main is TestMain of a package whose tests start dockerd: the test binary
// is the daemon's OCI runtime wrapper when called with RuntimeArg.
func Main(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == RuntimeArg {
		err := docker.RunRuntime(os.Args[2:])
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Daemon installs docker.io and ensures a daemon answers (a lab test:
// it needs root), stopping it at cleanup if it started it.
func Daemon(tb testing.TB) *docker.Daemon {
	tb.Helper()
	enginetest.RequireInstalled(tb, func(ctx context.Context) error {
		return docker.EnsureInstalled(ctx, enginetest.Log(tb))
	}, "dockerd", "runc")
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	d := &docker.Daemon{StateDir: StateDir, Runtime: []string{exe, RuntimeArg}, Log: enginetest.Log(tb)}
	start := time.Now()
	started, err := d.Ensure(context.Background())
	if started {
		tb.Logf("dockerd started in %s", time.Since(start).Round(time.Millisecond))
		tb.Cleanup(func() {
			if err := d.Stop(context.Background()); err != nil {
				tb.Errorf("stop dockerd: %v", err)
			}
		})
	}
	if err != nil {
		tb.Fatalf("dockerd: %v", err)
	}
	return d
}
