package etcd

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
)

// unanswered is a launcher whose API server did not answer in time
// whether a process runs (engines.Liveness).
type unanswered struct{ engines.Procs }

func (unanswered) Live(context.Context, string) (bool, error) {
	return false, context.DeadlineExceeded
}

// TestStatusOfMembersNotKnownToRun: members of which the launcher could
// not find out whether they run are no evidence: each timed out, and the
// service's state is unknown, not down (a k3s run's probe said "down,
// writes refused" of an etcd whose every member ran, when its pod list
// ran out of the probe's time).
func TestStatusOfMembersNotKnownToRun(t *testing.T) {
	c := &engines.Cluster{Service: "etcd", Launcher: unanswered{},
		Members: []engines.Member{{Name: "etcd-0"}, {Name: "etcd-1"}, {Name: "etcd-2"}}}
	st, err := New(enginetest.Log(t)).Status(t.Context(), c)
	require.NoError(t, err)
	si := lab.ServiceStatus{Writable: st.Writable}
	for _, m := range st.Members {
		require.True(t, m.TimedOut, "%s: %s", m.Name, m.Detail)
		require.Contains(t, m.Detail, "whether it runs is unknown")
		si.Members = append(si.Members, lab.Member{Name: m.Name, Up: m.Up, Healthy: m.Healthy, TimedOut: m.TimedOut})
	}
	observed, _, _ := lab.Observe(si)
	require.Equal(t, lab.Unknown, observed)
}
