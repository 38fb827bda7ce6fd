package redis

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func TestRedisInNetns(t *testing.T) {
	e, c := newLab(t)
	enginetest.NetNSHosts(t, c, fmt.Sprintf("clr%d", time.Now().UnixNano()%10000))
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
