package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func newLab(t *testing.T) (*Engine, *engines.Cluster) {
	t.Helper()
	enginetest.RequireRoot(t)
	e := New(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "cannot install redis: "+err.Error())
	}
	c := enginetest.Cluster(t, "redis", 3, 31)
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.Members {
				for _, f := range []string{"redis.log", "sentinel.log"} {
					b, _ := os.ReadFile(filepath.Join(m.LogDir, f))
					lines := strings.Split(string(b), "\n")
					if len(lines) > 25 {
						lines = lines[len(lines)-25:]
					}
					t.Logf("--- %s %s (tail)\n%s", m.Name, f, strings.Join(lines, "\n"))
				}
			}
		}
	})
	return e, c
}

func kill(t *testing.T, c *engines.Cluster, name string) {
	t.Helper()
	enginetest.Kill(t, c.StateDir, name, 10*time.Second)
}

func waitStatus(t *testing.T, e *Engine, c *engines.Cluster, what string, cond func(engines.Status) error) engines.Status {
	t.Helper()
	var st engines.Status
	err := engines.WaitFor(context.Background(), 60*time.Second, 100*time.Millisecond, what, func(ctx context.Context) error {
		var err error
		if st, err = e.Status(ctx, c); err != nil {
			return err
		}
		return cond(st)
	})
	require.NoError(t, err, "last status: %+v", st)
	return st
}

// primaryIs: member p is the healthy primary, every other running member a
// healthy replica.
func primaryIs(p int, down ...int) func(engines.Status) error {
	return func(st engines.Status) error {
		var errs []error
		for i, m := range st.Members {
			isDown := false
			for _, d := range down {
				isDown = isDown || d == i
			}
			switch {
			case isDown && m.Up:
				errs = append(errs, fmt.Errorf("member %d should be down: %+v", i, m))
			case isDown:
			case i == p && (m.Role != "primary" || !m.Healthy):
				errs = append(errs, fmt.Errorf("member %d not the primary: %+v", i, m))
			case i != p && (m.Role != "replica" || !m.Healthy):
				errs = append(errs, fmt.Errorf("member %d not a replica: %+v", i, m))
			}
		}
		if !st.Writable {
			errs = append(errs, errors.New("not writable"))
		}
		return errors.Join(errs...)
	}
}

func direct(t *testing.T, m engines.Member) *goredis.Client {
	cl := goredis.NewClient(&goredis.Options{Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(Port)), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { cl.Close() })
	return cl
}

func primaryOf(t *testing.T, st engines.Status) int {
	for i, m := range st.Members {
		if m.Role == "primary" && m.Healthy {
			return i
		}
	}
	t.Fatalf("no primary: %+v", st)
	return -1
}

func TestRedisSentinelFailover(t *testing.T) {
	e, c := newLab(t)
	ctx := context.Background()

	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("start: primary, 2 replicas, 3 sentinels healthy in %s", time.Since(t0).Round(time.Millisecond))
	for _, m := range c.Members {
		r, _ := proc.Load(c.StateDir, redisName(m))
		s, _ := proc.Load(c.StateDir, sentinelName(m))
		t.Logf("%s RSS redis %d KiB, sentinel %d KiB", m.Name, enginetest.RSSKiB(r.PID), enginetest.RSSKiB(s.PID))
	}
	waitStatus(t, e, c, "member 0 primary", primaryIs(0))
	// Status is sampled twice a second during runs: report what it costs.
	ts := time.Now()
	for range 10 {
		_, err := e.Status(ctx, c)
		require.NoError(t, err)
	}
	t.Logf("Status takes %s", (time.Since(ts) / 10).Round(time.Microsecond))
	require.NoError(t, e.Start(ctx, c)) // idempotent
	v, err := e.Version(ctx)
	require.NoError(t, err)
	t.Logf("version %s endpoints %v sentinels %v", v, e.Endpoints(c), SentinelAddrs(c))

	fc := goredis.NewFailoverClient(FailoverOptions(c))
	t.Cleanup(func() { fc.Close() })

	// Writes replicate to both replicas.
	require.NoError(t, fc.Set(ctx, "k1", "v1", 0).Err())
	for _, i := range []int{1, 2} {
		cl := direct(t, c.Members[i])
		require.NoError(t, engines.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, "replicated", func(ctx context.Context) error {
			return cl.Get(ctx, "k1").Err()
		}))
	}

	// A write acknowledged by a replica (WAIT on the write's connection).
	conn := fc.Conn()
	require.NoError(t, conn.Set(ctx, "acked", "yes", 0).Err())
	n, err := conn.Do(ctx, "WAIT", 1, 5000).Int()
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 1)
	conn.Close()

	// SIGKILL the primary's redis-server: Sentinel promotes a replica.
	t0 = time.Now()
	kill(t, c, redisName(c.Members[0]))
	st := waitStatus(t, e, c, "failover", func(st engines.Status) error {
		if st.Members[0].Up {
			return errors.New("member 0 still up")
		}
		for i := 1; i < 3; i++ {
			if st.Members[i].Role == "primary" && st.Members[i].Healthy && st.Writable {
				return nil
			}
		}
		return fmt.Errorf("no new primary: %+v", st.Members)
	})
	t.Logf("failover after SIGKILL of primary: %s", time.Since(t0).Round(time.Millisecond))
	p := primaryOf(t, st)
	require.Equal(t, "yes", direct(t, c.Members[p]).Get(ctx, "acked").Val(), "WAIT-acknowledged write lost")
	require.NoError(t, engines.WaitFor(ctx, 20*time.Second, 100*time.Millisecond, "failover client writes", func(ctx context.Context) error {
		return fc.Set(ctx, "k2", "v2", 0).Err()
	}))

	// The old primary comes back as a replica of the new one.
	t0 = time.Now()
	require.NoError(t, e.StartMember(ctx, c, 0))
	t.Logf("old primary rejoined as replica in %s", time.Since(t0).Round(time.Millisecond))
	waitStatus(t, e, c, "old primary is a replica", primaryIs(p))
	old := direct(t, c.Members[0])
	require.NoError(t, engines.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, "k2 on old primary", func(ctx context.Context) error {
		return old.Get(ctx, "k2").Err()
	}))
	require.Equal(t, "yes", old.Get(ctx, "acked").Val())

	// Power-off of the new primary's node (redis and its Sentinel), with its
	// data wiped: the two remaining Sentinels fail over; the node comes back
	// empty and resyncs from the new primary.
	kill(t, c, sentinelName(c.Members[p]))
	kill(t, c, redisName(c.Members[p]))
	t0 = time.Now()
	st = waitStatus(t, e, c, "second failover", func(st engines.Status) error {
		for i := range 3 {
			if i != p && st.Members[i].Role == "primary" && st.Members[i].Healthy && st.Writable {
				return nil
			}
		}
		return fmt.Errorf("no new primary: %+v", st.Members)
	})
	t.Logf("failover after power-off of primary node: %s", time.Since(t0).Round(time.Millisecond))
	p2 := primaryOf(t, st)
	require.NoError(t, os.RemoveAll(c.Members[p].DataDir))
	require.NoError(t, e.StartMember(ctx, c, p))
	waitStatus(t, e, c, "wiped member is a replica", primaryIs(p2))
	require.NoError(t, engines.WaitFor(ctx, 10*time.Second, 50*time.Millisecond, "acked on wiped member", func(ctx context.Context) error {
		return direct(t, c.Members[p]).Get(ctx, "acked").Err()
	}))

	// Every Sentinel agrees and knows the others again.
	require.NoError(t, e.waitHealthy(ctx, c))

	require.NoError(t, e.Stop(ctx, c))
	st, err = e.Status(ctx, c)
	require.NoError(t, err)
	for _, m := range st.Members {
		require.False(t, m.Up)
	}
	require.False(t, st.Writable)
}
