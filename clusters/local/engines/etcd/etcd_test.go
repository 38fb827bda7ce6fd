package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// testCluster places three members on 127.0.41.1-3: loopback addresses of
// their own, so that other labs on this machine do not collide with them.
func testCluster(t *testing.T, n int) *engines.Cluster {
	c := enginetest.ClusterAt(t, "etcd", n, netip.AddrFrom4([4]byte{127, 0, 41, 1}))
	c.Service = "etcd-test" // its cluster token, apart from the lab's etcd
	return c
}

func status(t *testing.T, e *Engine, c *engines.Cluster) engines.Status {
	t.Helper()
	st, err := e.Status(context.Background(), c)
	require.NoError(t, err)
	return st
}

func waitFor(t *testing.T, what string, cond func(ctx context.Context) error) {
	t.Helper()
	require.NoError(t, engines.WaitFor(context.Background(), 30*time.Second, 100*time.Millisecond, what, cond))
}

func leaderOf(st engines.Status) int {
	for i, m := range st.Members {
		if m.Role == "leader" && m.Healthy {
			return i
		}
	}
	return -1
}

func kill(t *testing.T, c *engines.Cluster, i int) {
	t.Helper()
	enginetest.Kill(t, c.StateDir, ProcessName(c.Members[i]), 5*time.Second)
}

func rssKiB(t *testing.T, c *engines.Cluster, i int) string {
	r, err := proc.Load(c.StateDir, ProcessName(c.Members[i]))
	if err != nil {
		return "?"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.PID))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func TestClusterFaults(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := New(log)
	enginetest.RequireInstalled(t, e.Install, binary)
	ctx := context.Background()
	c := testCluster(t, 3)
	t.Cleanup(func() {
		_ = e.Stop(context.Background(), c)
		// Anything left (a failed Stop) is ended by its record.
		recs, _ := proc.List(c.StateDir)
		for _, r := range recs {
			_ = r.Kill()
		}
		_ = e.Close()
	})

	v, err := e.Version(ctx)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(v, "3.4."), v)

	began := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("3 members healthy %s after start", time.Since(began).Round(time.Millisecond))
	st := status(t, e, c)
	require.NoError(t, st.OneLeader(), st.Summary())
	require.True(t, st.Writable)
	require.Equal(t, v, st.Version)
	for i := range c.Members {
		t.Logf("%s RSS %s", c.Members[i].Name, rssKiB(t, c, i))
	}

	// Start is idempotent: running members are left alone.
	before, err := proc.Load(c.StateDir, ProcessName(c.Members[0]))
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx, c))
	after, err := proc.Load(c.StateDir, ProcessName(c.Members[0]))
	require.NoError(t, err)
	require.Equal(t, before.PID, after.PID)

	cli, err := NewClient(e.Endpoints(c), c.Dialer())
	require.NoError(t, err)
	defer cli.Close()
	put := func(k string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := cli.Put(pctx, k, "v")
		require.NoError(t, err)
	}
	put("before-faults")

	// Kill a follower: the other two stay writable and report it gone.
	leader := leaderOf(st)
	require.GreaterOrEqual(t, leader, 0)
	follower := (leader + 1) % 3
	kill(t, c, follower)
	waitFor(t, "follower gone, others writable", func(context.Context) error {
		st := status(t, e, c)
		if st.Members[follower].Up {
			return fmt.Errorf("killed %s still Up", c.Members[follower].Name)
		}
		for i, m := range st.Members {
			if i != follower && !m.Healthy {
				return fmt.Errorf("%s not healthy: %s", m.Name, m.Detail)
			}
		}
		if !st.Writable {
			return errors.New("not writable")
		}
		return nil
	})
	put("one-follower-down")
	require.NoError(t, e.StartMember(ctx, c, follower))
	require.NoError(t, e.waitHealthy(ctx, c))

	// Kill the leader: another member becomes leader.
	st = status(t, e, c)
	leader = leaderOf(st)
	require.GreaterOrEqual(t, leader, 0)
	killed := time.Now()
	kill(t, c, leader)
	var newLeader int
	waitFor(t, "new leader", func(context.Context) error {
		st := status(t, e, c)
		newLeader = leaderOf(st)
		if newLeader < 0 || newLeader == leader || !st.Writable {
			return fmt.Errorf("no new leader: %s", st.Summary())
		}
		return nil
	})
	t.Logf("new leader %s %s after leader kill", c.Members[newLeader].Name, time.Since(killed).Round(time.Millisecond))
	require.NoError(t, e.StartMember(ctx, c, leader))
	require.NoError(t, e.waitHealthy(ctx, c))

	// Kill two: the survivor is up but out of quorum.
	survivor := 0
	kill(t, c, 1)
	kill(t, c, 2)
	waitFor(t, "survivor out of quorum", func(context.Context) error {
		st := status(t, e, c)
		if st.Members[1].Up || st.Members[2].Up {
			return errors.New("killed members still Up")
		}
		if !st.Members[survivor].Up || st.Members[survivor].Healthy || st.Writable {
			return fmt.Errorf("survivor still in quorum: %s", st.Summary())
		}
		return nil
	})
	t.Logf("two killed: %s", status(t, e, c).Summary())
	began = time.Now()
	require.NoError(t, e.StartMember(ctx, c, 1))
	require.NoError(t, e.StartMember(ctx, c, 2))
	require.NoError(t, e.waitHealthy(ctx, c))
	t.Logf("quorum back %s after restarting two", time.Since(began).Round(time.Millisecond))

	// Destroy: a stopped member loses its data and rejoins as a new member.
	put("before-destroy")
	victim := 2
	list, err := cli.MemberList(ctx)
	require.NoError(t, err)
	var oldID uint64
	for _, m := range list.Members {
		if m.Name == c.Members[victim].Name {
			oldID = m.ID
		}
	}
	require.NotZero(t, oldID)
	require.NoError(t, e.StopMember(ctx, c, victim))
	require.NoError(t, os.RemoveAll(c.Members[victim].DataDir))
	began = time.Now()
	require.NoError(t, e.StartMember(ctx, c, victim))
	require.NoError(t, e.waitHealthy(ctx, c))
	t.Logf("wiped member rejoined %s", time.Since(began).Round(time.Millisecond))
	list, err = cli.MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, list.Members, 3)
	for _, m := range list.Members {
		require.NotEqual(t, oldID, m.ID, "the wiped member's old identity was removed")
	}
	// The rejoined member has the data written before it was wiped.
	one, err := NewClient([]string{clientEndpoint(c.Members[victim])}, c.Dialer())
	require.NoError(t, err)
	defer one.Close()
	waitFor(t, "rejoined member has the data", func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := one.Get(rctx, "before-", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 2 {
			return fmt.Errorf("%d keys", len(resp.Kvs))
		}
		return nil
	})

	// Status is cheap enough to sample twice a second.
	began = time.Now()
	for range 5 {
		status(t, e, c)
	}
	t.Logf("Status of a healthy cluster takes %s", (time.Since(began) / 5).Round(time.Microsecond))

	require.NoError(t, e.Stop(ctx, c))
	for i := range c.Members {
		r, err := proc.Load(c.StateDir, ProcessName(c.Members[i]))
		if err == nil {
			require.False(t, r.Alive())
		}
	}
	st = status(t, e, c)
	for _, m := range st.Members {
		require.False(t, m.Up)
	}
	require.False(t, st.Writable)
}

// TestInNetNS runs a one-member cluster inside a network namespace, as the
// lab does, and observes it from outside.
func TestInNetNS(t *testing.T) {
	e := New(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	enginetest.RequireInstalled(t, e.Install, binary)
	t.Cleanup(func() { _ = e.Close() })
	ns := fmt.Sprintf("etcdt%d", os.Getpid()%100000)
	enginetest.NetNSVeth(t, ns, netip.MustParseAddr("198.19.241.1"), netip.MustParseAddr("198.19.241.2"))
	c := testCluster(t, 1)
	c.Members[0].NetNS = ns
	c.Members[0].Addr = netip.MustParseAddr("198.19.241.2")
	t.Cleanup(func() {
		_ = e.Stop(context.Background(), c)
		recs, _ := proc.List(c.StateDir)
		for _, r := range recs {
			_ = r.Kill()
		}
	})
	ctx := context.Background()
	require.NoError(t, e.Start(ctx, c))
	st := status(t, e, c)
	require.NoError(t, st.OneLeader(), st.Summary())
	require.True(t, st.Writable)
	r, err := proc.Load(c.StateDir, ProcessName(c.Members[0]))
	require.NoError(t, err)
	self, err := os.Readlink("/proc/self/ns/net")
	require.NoError(t, err)
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", r.PID))
	require.NoError(t, err)
	require.NotEqual(t, self, theirs, "the member runs in its namespace")
	logged, err := os.ReadFile(filepath.Join(c.Members[0].LogDir, "etcd.log"))
	require.NoError(t, err)
	require.NotEmpty(t, logged, "the member logs to its LogDir")
	require.NoError(t, e.Stop(ctx, c))
	require.False(t, r.Alive())
}
