package galera

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func TestGaleraInNetns(t *testing.T) {
	e, c := newLab(t)
	enginetest.NetNSHosts(t, c, fmt.Sprintf("clg%d", time.Now().UnixNano()%10000))
	ctx := context.Background()
	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("start in netns: %s", time.Since(t0).Round(time.Millisecond))
	st := waitStatus(t, e, c, "synced", enginetest.All(enginetest.MemberIs(0, true, true, "synced", "size=3"),
		enginetest.MemberIs(1, true, true, "synced", "size=3"), enginetest.MemberIs(2, true, true, "synced", "size=3")))
	require.True(t, st.Writable)

	// The process really runs in the member's namespace.
	r, err := proc.Load(c.StateDir, mariadb.ProcName(c.Members[1]))
	require.NoError(t, err)
	out, err := exec.Command("ip", "netns", "identify", fmt.Sprint(r.PID)).Output()
	require.NoError(t, err)
	require.Equal(t, c.Members[1].NetNS, strings.TrimSpace(string(out)))

	kill(t, c, 1)
	waitStatus(t, e, c, "two left", enginetest.MemberIs(0, true, true, "synced", "size=2"))
	require.NoError(t, e.StartMember(ctx, c, 1))
	waitStatus(t, e, c, "three again", enginetest.MemberIs(1, true, true, "synced", "size=3"))
	require.NoError(t, e.Stop(ctx, c))
}
