package checks_test

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// recorded replays a run recorded on the kind test cluster
// (testdata/NAME: its scenario, history and failover budgets).
func recorded(t *testing.T, name string) *checks.Report {
	t.Helper()
	dir := "testdata/" + name + "/"
	sc, err := scenarios.Parse(dir + "scenario.yaml")
	require.NoError(t, err)
	f, err := os.Open(dir + "history.jsonl.gz")
	require.NoError(t, err)
	defer f.Close()
	z, err := gzip.NewReader(f)
	require.NoError(t, err)
	events, err := history.Read(z)
	require.NoError(t, err)
	var budgets map[string]checks.Budget
	b, err := os.ReadFile(dir + "budgets.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &budgets))
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: events, FinalError: "no final state: the run drove no load"},
		checks.Options{Budgets: budgets})
	require.NoError(t, err)
	return rep
}

// A run of `attach-etcd-pauses.yaml` on the kind cluster (ci33): two of
// three etcd members paused, at +10.2 s and +10.7 s, thawed at +30.2 s
// and +30.7 s. The third member answered "no leader" from +21.8 s: the
// etcd read-only, as analyze predicts, until the first thaw brought the
// quorum back at +30.6 s — before the second fault's recovery. That
// outage ended because a fault was healed, not because etcd failed over:
// its samples are the quorum check's, which fails the run (quorum lost,
// as analyze predicts). Judged as a failover, they were compared by
// neither check and the run was UNKNOWN.
func TestOutageEndedByAnotherHealIsNotAFailover(t *testing.T) {
	rep := recorded(t, "pauses-one-thawed-first")
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	fs := findings(rep, checks.CheckQuorum, checks.SevFail)
	require.Len(t, fs, 1, dump(rep, checks.CheckQuorum))
	require.True(t, strings.Contains(fs[0].Message, "etcd observed read-only (0 up) where analyze predicts read-only (active: pause service/etcd/0, pause service/etcd/1)") &&
		strings.Contains(fs[0].Message, "quorum lost, as analyze predicts"), fs[0].Message)
	require.Equal(t, checks.Fail, rep.Verdict, rep.Why)
	for _, pf := range rep.Check(checks.CheckQuorum).PerFault {
		require.NotEqual(t, checks.Unknown, pf.Status, pf.Summary)
	}
}
