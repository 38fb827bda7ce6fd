package docstore

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// TestStatusOfMembersNotKnownToRun: members whose probes ran out of time
// and of which the launcher could not find out whether they run are no
// evidence: each timed out, and the service's state is unknown, not
// read-only (a k3s quickstart run's one sample "bulk-db read-only (2 up)
// where analyze predicts ok" on a busy 2-core machine, a false FAIL).
func TestStatusOfMembersNotKnownToRun(t *testing.T) {
	timeout := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	c := &engines.Cluster{Service: "bulk-db", Launcher: enginetest.Unanswered{}, Dial: timeout, Files: engines.HostFiles{}}
	for i, name := range []string{"bulk-db-0", "bulk-db-1", "bulk-db-2"} {
		c.Members = append(c.Members, engines.Member{Index: i, Name: name, Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)})})
	}
	st, err := New(enginetest.Log(t), t.TempDir()).Status(t.Context(), c)
	require.NoError(t, err)
	enginetest.RequireUnknown(t, st)
}
