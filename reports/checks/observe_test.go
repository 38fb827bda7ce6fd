package checks_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
	"github.com/chaosloop/chaosloop/scenarios"
)

// observed is a synthetic run as a run that drives no load records it
// (attach mode on a real cluster): the services' samples, the faults and
// the phases, with the observe phase first; no transfer, message nor
// final state.
func observed(t *testing.T, sc *scenarios.Scenario, cfg synth.Config) []history.Event {
	t.Helper()
	run := generate(t, sc, cfg)
	events := []history.Event{{T: 0, Type: history.PhaseChange, Phase: evidence.PhaseObserve, Detail: "attach mode"}}
	for _, e := range run.Events {
		switch e.Type {
		case history.Sample, history.Fault, history.PhaseChange:
			events = append(events, e)
		}
	}
	return events
}

func judgeObserved(t *testing.T, sc *scenarios.Scenario, events []history.Event) *checks.Report {
	t.Helper()
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: events, FinalError: "no final state: the run drove no load"}, checks.Options{})
	require.NoError(t, err)
	return rep
}

// Only quorum is judged; every other check is SKIP, saying why, and the
// run passes on the samples alone.
func TestObservedRunJudgesQuorumAlone(t *testing.T) {
	sc := quickstart(t)
	rep := judgeObserved(t, sc, observed(t, sc, synth.Config{}))
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
	require.Equal(t, "attach mode", rep.Observing)
	for _, c := range rep.Checks {
		if c.ID == checks.CheckQuorum {
			require.Equal(t, checks.Pass, c.Status, dump(rep, c.ID))
			require.NotZero(t, c.Counts["samplesCompared"])
			continue
		}
		require.Equal(t, checks.Skip, c.Status, c.ID)
		require.Equal(t, "not judged: attach mode", c.Summary)
		for _, pf := range c.PerFault {
			require.Equal(t, checks.Skip, pf.Status)
		}
	}
	for _, f := range rep.Faults {
		require.Equal(t, checks.Pass, f.Status)
	}
}

// The negative control: a service observed down where analyze predicts it
// degraded fails the run, as with load.
func TestObservedRunFailsOnQuorum(t *testing.T) {
	sc := quickstart(t)
	rep := judgeObserved(t, sc, observed(t, sc, synth.Config{ObservedDown: map[int]string{0: "central-ledger-db"}}))
	require.Equal(t, checks.Fail, rep.Verdict)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum))
}

// Without a sample compared there is no evidence at all: no pass.
func TestObservedRunWithNoSampleComparedIsUnknown(t *testing.T) {
	sc := quickstart(t)
	var events []history.Event
	for _, e := range observed(t, sc, synth.Config{}) {
		if e.Type == history.Sample {
			e.Timeout, e.Observed, e.Writable = true, "", nil
		}
		events = append(events, e)
	}
	rep := judgeObserved(t, sc, events)
	require.Equal(t, checks.Unknown, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	require.Equal(t, checks.Unknown, rep.Verdict)
	require.NotEqual(t, checks.ExitPass, rep.ExitCode)
}
