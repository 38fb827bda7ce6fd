// Package enginetest holds what tests of the lab's engines, and tests that
// need a real engine, share: the rule that a missing lab is a skip on a
// laptop but a failure under CHAOSLOOP_REQUIRE_LAB=1, and a three-member
// cluster on loopback addresses whose processes are killed at cleanup.
package enginetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// RequireLab skips a test that needs root and real engines, unless
// CHAOSLOOP_REQUIRE_LAB=1 (set by CI), where a missing lab is a failure.
func RequireLab(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CHAOSLOOP_REQUIRE_LAB") == "1" {
		tb.Fatalf("lab required but unavailable: %s", why)
	}
	tb.Skip(why)
}

// RequireRoot is RequireLab unless the test runs as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		RequireLab(tb, "needs root")
	}
}

// Cluster describes an n-member cluster of service on 127.0.0.first… in a
// fresh evidence directory (NewEvidence: traversable by the engines' own
// users, kept with its data and logs when the test fails). At cleanup
// every process recorded in its state directory is killed.
func Cluster(tb testing.TB, service string, n int, first byte) *engines.Cluster {
	tb.Helper()
	return ClusterAt(tb, service, n, netip.AddrFrom4([4]byte{127, 0, 0, first}))
}

// ClusterAt is Cluster on consecutive addresses from first, for tests that
// keep a loopback range of their own outside 127.0.0.x (etcd's, ZooKeeper's).
func ClusterAt(tb testing.TB, service string, n int, first netip.Addr) *engines.Cluster {
	tb.Helper()
	dir := NewEvidence(tb).WorkDir(service)
	c := &engines.Cluster{Service: service, StateDir: filepath.Join(dir, "state")}
	addr := first
	for i := range n {
		name := fmt.Sprintf("%s-%d", service, i+1)
		c.Members = append(c.Members, engines.Member{
			Index: i, Name: name, Node: name,
			Addr:    addr,
			DataDir: filepath.Join(dir, name, "data"),
			LogDir:  filepath.Join(dir, name, "log"),
		})
		addr = addr.Next()
	}
	tb.Cleanup(func() {
		recs, _ := proc.List(c.StateDir)
		for _, r := range recs {
			_ = r.Kill()
			r.Wait(context.Background(), 10*time.Second)
		}
	})
	return c
}

// Kill is a power-off of one recorded process: SIGKILL, then the test fails
// unless it is gone within wait.
func Kill(tb testing.TB, stateDir, name string, wait time.Duration) {
	tb.Helper()
	r, err := proc.Load(stateDir, name)
	require.NoError(tb, err)
	require.NoError(tb, r.Kill())
	require.True(tb, r.Wait(context.Background(), wait))
}

// RSSKiB is the resident memory of pid from /proc, 0 when it is unknown;
// tests log it to report what each engine costs.
func RSSKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
