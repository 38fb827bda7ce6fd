package redis

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// unixClient talks to member m's redis-server over its socket (the test
// runs outside the members' namespaces).
func unixClient(t *testing.T, m engines.Member) *goredis.Client {
	cl := client(&engines.Cluster{}, m, 5*time.Second)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// configEpoch is what member m's Sentinel says the primary's config epoch
// is: each failover raises it.
func configEpoch(t *testing.T, c *engines.Cluster, m engines.Member) string {
	t.Helper()
	sc := sentinelClient(&engines.Cluster{}, m, 2*time.Second)
	defer sc.Close()
	st, err := sc.Master(context.Background(), MasterName(c)).Result()
	require.NoError(t, err)
	return st["config-epoch"]
}

// sentinelDebug is a Sentinel's timing parameters (SENTINEL DEBUG).
func sentinelDebug(t *testing.T, m engines.Member) map[string]string {
	t.Helper()
	sc := sentinelClient(&engines.Cluster{}, m, 2*time.Second)
	defer sc.Close()
	cmd := goredis.NewSliceCmd(context.Background(), "SENTINEL", "DEBUG")
	require.NoError(t, sc.Process(context.Background(), cmd))
	v := cmd.Val()
	out := map[string]string{}
	for i := 0; i+1 < len(v); i += 2 {
		out[strings.ToLower(fmt.Sprint(v[i]))] = fmt.Sprint(v[i+1])
	}
	return out
}

func priorities(t *testing.T, c *engines.Cluster) []string {
	t.Helper()
	var out []string
	for _, m := range c.Members {
		v, err := unixClient(t, m).ConfigGet(context.Background(), "replica-priority").Result()
		require.NoError(t, err)
		out = append(out, v["replica-priority"])
	}
	return out
}

func TestPreferPrimary(t *testing.T) {
	e, c := newLab(t)
	enginetest.NetNSHosts(t, c, fmt.Sprintf("clp%d", time.Now().UnixNano()%10000))
	ctx := context.Background()
	require.NoError(t, e.Start(ctx, c))
	waitStatus(t, e, c, "member 0 primary", primaryIs(0))

	// Already member 0: nothing happens (no failover, same epoch).
	epoch := configEpoch(t, c, c.Members[1])
	require.NoError(t, e.PreferPrimary(ctx, c))
	require.Equal(t, epoch, configEpoch(t, c, c.Members[1]))

	// Move the primary away from member 0 with a plain Sentinel failover.
	sc := sentinelClient(c, c.Members[1], 2*time.Second)
	t.Cleanup(func() { sc.Close() })
	require.NoError(t, sc.Failover(ctx, MasterName(c)).Err())
	require.NoError(t, engines.WaitFor(ctx, 60*time.Second, 250*time.Millisecond, "primary moved off member 0", func(ctx context.Context) error {
		p, err := e.healthy(ctx, c)
		if err != nil {
			return err
		}
		if p == 0 {
			return fmt.Errorf("member 0 still primary")
		}
		return nil
	}))
	from, ok := e.currentPrimary(ctx, c)
	require.True(t, ok)
	require.NotEqual(t, 0, from)
	t.Logf("primary moved to %s", c.Members[from].Name)

	// Negative: with a member stopped, no failover is tried.
	other := 3 - from // the member that is neither 0 nor the primary
	require.NoError(t, e.StopMember(ctx, c, other))
	epoch = configEpoch(t, c, c.Members[from])
	err := e.PreferPrimary(ctx, c)
	require.Error(t, err)
	require.Contains(t, err.Error(), "not running")
	t.Logf("with %s stopped: %v", c.Members[other].Name, err)
	p, ok := e.currentPrimary(ctx, c)
	require.True(t, ok)
	require.Equal(t, from, p)
	require.Equal(t, epoch, configEpoch(t, c, c.Members[from]))
	r, err := info(ctx, c, c.Members[0])
	require.NoError(t, err)
	require.Equal(t, "slave", r.Role)
	require.NoError(t, e.StartMember(ctx, c, other))
	require.NoError(t, e.waitHealthy(ctx, c))
	require.Equal(t, []string{"100", "100", "100"}, priorities(t, c))

	// Back to member 0.
	t0 := time.Now()
	require.NoError(t, e.PreferPrimary(ctx, c))
	t.Logf("PreferPrimary moved the primary %s -> %s in %s", c.Members[from].Name, c.Members[0].Name, time.Since(t0).Round(time.Millisecond))
	p, ok = e.currentPrimary(ctx, c)
	require.True(t, ok)
	require.Equal(t, 0, p)
	r, err = info(ctx, c, c.Members[0])
	require.NoError(t, err)
	require.Equal(t, "master", r.Role)
	require.Equal(t, 2, r.Replicas)
	for _, m := range c.Members[1:] {
		r, err := info(ctx, c, m)
		require.NoError(t, err)
		require.Equal(t, "slave", r.Role, m.Name)
		require.Equal(t, c.Members[0].Addr.String(), r.MasterHost, m.Name)
		require.True(t, r.LinkUp, m.Name)
	}
	waitStatus(t, e, c, "member 0 primary again", primaryIs(0))

	// Priorities are back, in the running config, in redis.conf, and in
	// every Sentinel's view.
	require.Equal(t, []string{"100", "100", "100"}, priorities(t, c))
	for _, m := range c.Members {
		b, err := os.ReadFile(redisConf(m))
		require.NoError(t, err)
		require.NotContains(t, string(b), "replica-priority 0", m.Name)
		for _, s := range c.Members {
			prios, err := sentinelPriorities(ctx, c, s)
			require.NoError(t, err)
			if pr, ok := prios[m.Addr.String()]; ok {
				require.Equal(t, replicaPriority, pr, "sentinel %s about %s", s.Name, m.Name)
			}
		}
	}
	// Sentinel's polling periods are back to Redis's defaults.
	for _, m := range c.Members {
		d := sentinelDebug(t, m)
		require.Equal(t, "10000", d["info-period"], "%s: %v", m.Name, d)
		require.Equal(t, "2000", d["publish-period"], "%s: %v", m.Name, d)
	}
	// A restart would keep member 0 primary: the Sentinel configs say so.
	require.Equal(t, 0, configuredPrimary(t.Context(), c))

	// Writes go to member 0 and reach the replicas.
	w := unixClient(t, c.Members[0]).Conn()
	t.Cleanup(func() { w.Close() })
	require.NoError(t, w.Set(ctx, "after-prefer", "yes", 0).Err())
	n, err := w.Do(ctx, "WAIT", 2, 5000).Int()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for _, m := range c.Members[1:] {
		require.Equal(t, "yes", unixClient(t, m).Get(ctx, "after-prefer").Val(), m.Name)
	}

	// Again: a no-op.
	epoch = configEpoch(t, c, c.Members[0])
	require.NoError(t, e.PreferPrimary(ctx, c))
	require.Equal(t, epoch, configEpoch(t, c, c.Members[0]))
	p, ok = e.currentPrimary(ctx, c)
	require.True(t, ok)
	require.Equal(t, 0, p)

	require.NoError(t, e.Stop(ctx, c))
}
