package redis

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// netnsHosts puts the members in network namespaces of their own, joined by
// a bridge in a switch namespace, addressed from 198.19.0.0/24 with no
// default route (as the lab does); removed by cleanup.
func netnsHosts(t *testing.T, c *engines.Cluster, tag string) {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	sw := tag + "-sw"
	t.Cleanup(func() {
		for _, m := range c.Members {
			_ = exec.Command("ip", "netns", "del", m.NetNS).Run()
		}
		_ = exec.Command("ip", "netns", "del", sw).Run()
	})
	run("netns", "add", sw)
	run("-n", sw, "link", "add", "br0", "type", "bridge")
	run("-n", sw, "link", "set", "br0", "up")
	for i := range c.Members {
		m := &c.Members[i]
		m.NetNS = fmt.Sprintf("%s-h%d", tag, i+1)
		m.Addr = netip.AddrFrom4([4]byte{198, 19, 0, byte(11 + i)})
		run("netns", "add", m.NetNS)
		port := fmt.Sprintf("%sp%d", tag, i+1)
		run("link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", m.NetNS)
		run("-n", sw, "link", "set", port, "master", "br0", "up")
		run("-n", m.NetNS, "addr", "add", m.Addr.String()+"/24", "dev", "eth0")
		run("-n", m.NetNS, "link", "set", "eth0", "up")
		run("-n", m.NetNS, "link", "set", "lo", "up")
	}
}

func TestRedisInNetns(t *testing.T) {
	e, c := newLab(t)
	netnsHosts(t, c, fmt.Sprintf("clr%d", time.Now().UnixNano()%10000))
	ctx := context.Background()
	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("start in netns: %s", time.Since(t0).Round(time.Millisecond))
	waitStatus(t, e, c, "member 0 primary", primaryIs(0))

	// The processes really run in the member's namespace.
	for _, name := range []string{redisName(c.Members[1]), sentinelName(c.Members[1])} {
		r, err := proc.Load(c.StateDir, name)
		require.NoError(t, err)
		out, err := exec.Command("ip", "netns", "identify", fmt.Sprint(r.PID)).Output()
		require.NoError(t, err)
		require.Equal(t, c.Members[1].NetNS, strings.TrimSpace(string(out)))
	}

	// Power-off of the primary's node: failover, then it rejoins as replica.
	kill(t, c, sentinelName(c.Members[0]))
	kill(t, c, redisName(c.Members[0]))
	st := waitStatus(t, e, c, "failover", func(st engines.Status) error {
		for i := 1; i < 3; i++ {
			if st.Members[i].Role == "primary" && st.Members[i].Healthy && st.Writable {
				return nil
			}
		}
		return fmt.Errorf("no new primary: %+v", st.Members)
	})
	p := primaryOf(t, st)
	require.NoError(t, e.StartMember(ctx, c, 0))
	waitStatus(t, e, c, "old primary is a replica", primaryIs(p))
	require.NoError(t, e.Stop(ctx, c))
}
