package etcd

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// TestStatusOfMembersNotKnownToRun: members of which the launcher could
// not find out whether they run are no evidence: each timed out, and the
// service's state is unknown, not down (a k3s run's probe said "down,
// writes refused" of an etcd whose every member ran, when its pod list
// ran out of the probe's time).
func TestStatusOfMembersNotKnownToRun(t *testing.T) {
	c := &engines.Cluster{Service: "etcd", Launcher: enginetest.Unanswered{},
		Members: []engines.Member{{Name: "etcd-0"}, {Name: "etcd-1"}, {Name: "etcd-2"}}}
	st, err := New(enginetest.Log(t)).Status(t.Context(), c)
	require.NoError(t, err)
	for _, m := range st.Members {
		require.Contains(t, m.Detail, "whether it runs is unknown")
	}
	enginetest.RequireUnknown(t, st)
}
