package evidence_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/scenarios"
)

const s = time.Second

func scenario(faults ...scenarios.Fault) *scenarios.Scenario {
	w := scenarios.Duration{Duration: 10 * s}
	return &scenarios.Scenario{Name: "t", Load: &scenarios.Load{Warmup: &w}, Faults: faults}
}

func fault(action, target string, at, dur time.Duration) scenarios.Fault {
	f := scenarios.Fault{Action: action, Target: target, At: &scenarios.Duration{Duration: at}}
	if dur > 0 {
		f.For = &scenarios.Duration{Duration: dur}
	}
	return f
}

func TestOpsPairInvocationsAndCompletions(t *testing.T) {
	ev := []history.Event{
		// Out of order on purpose: writers stamp T before taking the lock.
		{T: 2 * s, Type: history.OK, Op: history.OpTransfer, ID: "a"},
		{T: 1 * s, Type: history.Invoke, Op: history.OpTransfer, ID: "a"},
		{T: 3 * s, Type: history.Invoke, Op: history.OpTransfer, ID: "b"},
		{T: 4 * s, Type: history.Invoke, Op: history.OpTransfer, ID: "b"}, // a retry
		{T: 5 * s, Type: history.Fail, Op: history.OpTransfer, ID: "b"},
		{T: 6 * s, Type: history.OK, Op: history.OpTransfer, ID: "ghost"},
		{T: 7 * s, Type: history.OK, Op: history.OpProduce, Topic: "p", Offset: 3},
		{T: 8 * s, Type: history.OK, Op: history.OpConsume, Topic: "p", Offset: 3},
		{T: 9 * s, Type: history.Dropped, Op: history.OpTransfer},
	}
	ix := evidence.Build(ev, scenario())
	ops := ix.Ops[history.OpTransfer]
	require.Len(t, ops, 4)
	a := ops[0]
	require.Equal(t, history.OK, a.Outcome)
	l, ok := a.Latency()
	require.True(t, ok)
	require.Equal(t, s, l)
	// The first invocation of b completes first; the retry never does
	// and is unknown.
	require.Equal(t, history.Fail, ops[1].Outcome)
	require.Equal(t, 3*s, ops[1].Invoke)
	require.Equal(t, history.Info, ops[2].Outcome)
	require.False(t, ops[2].Completed)
	require.False(t, ops[3].Invoked)
	require.Len(t, ix.Problems, 1)
	require.Contains(t, ix.Problems[0], "ghost")
	require.Len(t, ix.Ops[history.OpProduce], 1)
	require.Len(t, ix.Consumed, 1)
	require.Equal(t, []time.Duration{9 * s}, ix.Dropped)
	require.Equal(t, 1*s, ix.LoadStart)
	require.Equal(t, 9*s, ix.LoadEnd)
	require.Equal(t, 11*s, ix.BaselineStart, "no phase events: warmup after the first arrival")
}

func TestFaultsMatchTheScenario(t *testing.T) {
	sc := scenario(
		fault(scenarios.ActionKill, "service/cache/leader", 5*s, 5*s),
		fault(scenarios.ActionPowerOff, "rack/dc1/r1", 20*s, 0),
		fault(scenarios.ActionIsolate, "site/dc3", 40*s, 5*s),
	)
	ev := []history.Event{
		{T: 1 * s, Type: history.PhaseChange, Phase: "warmup"},
		{T: 3 * s, Type: history.PhaseChange, Phase: "baseline"},
		{T: 10 * s, Type: history.Fault, Phase: "inject", Action: "kill", Target: "service/cache/0"},
		{T: 15 * s, Type: history.Fault, Phase: "recover", Action: "kill", Target: "service/cache/0"},
		{T: 30 * s, Type: history.Fault, Phase: "inject", Action: "power-off", Target: "rack/dc1/r1"},
		{T: 31 * s, Type: history.Fault, Phase: "inject", Action: "isolate", Target: "switch/x"},
		{T: 32 * s, Type: history.Fault, Phase: "recover", Action: "isolate", Target: "link/a/b"},
		{T: 60 * s, Type: history.Sample, Service: "cache", Observed: "degraded", MembersUp: 2},
	}
	ix := evidence.Build(ev, sc)
	require.Equal(t, 3*s, ix.BaselineStart)
	require.Len(t, ix.Faults, 4)
	kill, power, iso, extra := ix.Faults[0], ix.Faults[1], ix.Faults[2], ix.Faults[3]
	require.True(t, kill.Injected && kill.Recovered)
	require.Equal(t, "service/cache/0", kill.Target, "the resolved member")
	require.Equal(t, "0", kill.Model.Target.Member)
	require.True(t, power.Injected)
	require.False(t, power.Recovered)
	require.Equal(t, 60*s, power.Recover, "lasts to the end of the history")
	require.False(t, iso.Injected, "planned, never injected")
	require.Equal(t, -1, extra.Index)
	require.Len(t, ix.Problems, 2) // the unplanned inject, the unmatched recover
	require.Equal(t, []time.Duration{10 * s, 15 * s, 30 * s, 31 * s}, ix.Changes())
	require.Equal(t, 10*s, ix.FirstFault)

	// Blame: the kill's window runs to its heal plus settle, cut short by
	// the next injection.
	from, to := ix.Window(kill, 30*s)
	require.Equal(t, 10*s, from)
	require.Equal(t, 30*s, to)
	require.Equal(t, 0, ix.Blame(29*s, 30*s))
	require.Equal(t, 1, ix.Blame(30*s, 30*s))
	require.Equal(t, 3, ix.Blame(45*s, 30*s), "the latest injected of overlapping faults")
	require.Equal(t, -1, ix.Blame(5*s, 30*s))
	require.Len(t, ix.Active(35*s), 2)

	require.Len(t, ix.Samples["cache"], 1)
	require.True(t, ix.Samples["cache"][0].Valid)
}

func TestSamplesTrustWritable(t *testing.T) {
	no := false
	ix := evidence.Build([]history.Event{
		{T: s, Type: history.Sample, Service: "db", Observed: "ok", MembersUp: 3, Writable: &no},
		{T: 2 * s, Type: history.Sample, Service: "db", Error: "connection refused"},
	}, scenario())
	ss := ix.Samples["db"]
	require.Equal(t, "read-only", ss[0].Observed.String())
	require.False(t, ss[1].Valid)
}

func TestSeriesRate(t *testing.T) {
	var ev []history.Event
	for i := range 100 {
		at := time.Duration(i) * 100 * time.Millisecond // 10/s for 10s
		ev = append(ev,
			history.Event{T: at, Type: history.Invoke, Op: history.OpTransfer, ID: string(rune('a'+i%26)) + string(rune('0'+i/26))},
			history.Event{T: at + 50*time.Millisecond, Type: history.OK, Op: history.OpTransfer, ID: string(rune('a'+i%26)) + string(rune('0'+i/26))})
	}
	ix := evidence.Build(ev, scenario())
	se := ix.Series(s)
	r, ok := se.Rate(0, 10*s)
	require.True(t, ok)
	require.InDelta(t, 10, r, 0.01)
	_, ok = se.Rate(5*s, 5*s)
	require.False(t, ok)
	lat := ix.Latencies(0, 10*s)
	require.Len(t, lat, 100)
	require.Equal(t, 50*time.Millisecond, evidence.Percentile(lat, 0.99))
}

// A timed-out probe carries no state (even if it names one), and the
// scheduler's lateness reaches the fault.
func TestTimedOutSampleAndLateness(t *testing.T) {
	no := false
	ix := evidence.Build([]history.Event{
		{T: 1 * s, Type: history.Sample, Service: "kafka", Observed: "unknown", Timeout: true, MembersUp: 2},
		{T: 2 * s, Type: history.Sample, Service: "kafka", Observed: "read-only", Timeout: true, Writable: &no},
		{T: 3 * s, Type: history.Sample, Service: "kafka", Observed: "read-only", MembersUp: 2, Writable: &no},
		{T: 20 * s, Type: history.Fault, Phase: "inject", Action: "power-off", Target: "node/n1", Late: 1500 * time.Millisecond},
		{T: 31 * s, Type: history.Fault, Phase: "recover", Action: "power-off", Target: "node/n1", Late: 1500 * time.Millisecond},
	}, scenario(fault("power-off", "node/n1", 10*s, 10*s)))
	ss := ix.Samples["kafka"]
	require.Len(t, ss, 3)
	for _, smp := range ss[:2] {
		require.True(t, smp.Timeout)
		require.False(t, smp.Valid)
	}
	require.True(t, ss[2].Valid)
	require.False(t, ss[2].Timeout)
	require.Equal(t, 1500*time.Millisecond, ix.Faults[0].InjectLate)
	require.Equal(t, 1500*time.Millisecond, ix.Faults[0].RecoverLate)
}

// A transfer in flight when a fault goes in counts for that fault, not for
// the phase it started in: its wait is the fault's doing.
func TestLatenciesAttributeInFlightTransfersToTheFault(t *testing.T) {
	sc := scenario(fault(scenarios.ActionPowerOff, "rack/dc1/r1", 10*s, 10*s))
	tr := func(id string, from, to time.Duration) []history.Event {
		return []history.Event{
			{T: from, Type: history.Invoke, Op: history.OpTransfer, ID: id},
			{T: to, Type: history.OK, Op: history.OpTransfer, ID: id},
		}
	}
	ev := []history.Event{
		{T: 1 * s, Type: history.PhaseChange, Phase: "warmup"},
		{T: 3 * s, Type: history.PhaseChange, Phase: "baseline"},
		{T: 20 * s, Type: history.Fault, Phase: "inject", Action: "power-off", Target: "rack/dc1/r1"},
		{T: 30 * s, Type: history.Fault, Phase: "recover", Action: "power-off", Target: "rack/dc1/r1"},
	}
	ev = append(ev, tr("before", 5*s, 6*s)...)
	ev = append(ev, tr("caught", 19*s, 27*s)...) // in flight at the inject
	ev = append(ev, tr("during", 22*s, 32*s)...) // invoked during, done after heal
	ev = append(ev, tr("after", 31*s, 31500*time.Millisecond)...)
	ix := evidence.Build(ev, sc)
	require.Equal(t, []time.Duration{s}, ix.Latencies(ix.BaselineStart, 20*s))
	require.Equal(t, []time.Duration{8 * s, 10 * s}, ix.Latencies(20*s, 30*s))
	require.Equal(t, []time.Duration{s / 2}, ix.Latencies(30*s, 40*s))
}

// A transfer that gives up after the heal failed because of the fault it
// was waiting out: the per-phase failure count follows Latencies, not the
// time the client gave up.
func TestFailuresAttributeToTheFaultTheyWaitedOut(t *testing.T) {
	sc := scenario(fault(scenarios.ActionPowerOff, "rack/dc1/r1", 10*s, 10*s))
	tr := func(id, outcome string, from, to time.Duration) []history.Event {
		return []history.Event{
			{T: from, Type: history.Invoke, Op: history.OpTransfer, ID: id},
			{T: to, Type: outcome, Op: history.OpTransfer, ID: id},
		}
	}
	ev := []history.Event{
		{T: 1 * s, Type: history.PhaseChange, Phase: "warmup"},
		{T: 3 * s, Type: history.PhaseChange, Phase: "baseline"},
		{T: 20 * s, Type: history.Fault, Phase: "inject", Action: "power-off", Target: "rack/dc1/r1"},
		{T: 30 * s, Type: history.Fault, Phase: "recover", Action: "power-off", Target: "rack/dc1/r1"},
	}
	ev = append(ev, tr("caught", history.Info, 15*s, 45*s)...)                                      // in flight at the inject, timed out after the heal
	ev = append(ev, tr("during", history.Fail, 25*s, 55*s)...)                                      // invoked during, failed after the heal
	ev = append(ev, tr("fine", history.OK, 22*s, 23*s)...)                                          // acknowledged: not a failure
	ev = append(ev, tr("after", history.Fail, 35*s, 36*s)...)                                       // its own phase's
	ev = append(ev, history.Event{T: 50 * s, Type: history.Invoke, Op: history.OpBulk, ID: "open"}) // never completed
	ix := evidence.Build(ev, sc)
	require.Equal(t, 0, ix.Failures(ix.BaselineStart, 20*s))
	require.Equal(t, 2, ix.Failures(20*s, 30*s))
	require.Equal(t, 2, ix.Failures(30*s, 60*s))
}
