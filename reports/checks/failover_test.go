package checks_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
)

// The quickstart's second fault, isolate site/dc3, goes in at +131 s (load
// from 1 s, warmup 20 s, at 110 s).
const isolateAt = 131 * time.Second

// slowDocstore is the case: the document store refuses writes from
// +7.0 s to +18.1 s after the isolation while Patroni elects a new leader.
func slowDocstore(t *testing.T, opts checks.Options) *checks.Report {
	t.Helper()
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{WriteOutage: map[int]synth.WriteOutage{
		1: {Service: "bulk-db", From: 7 * time.Second, To: 18100 * time.Millisecond}}})
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final, Seed: 7}, opts)
	require.NoError(t, err)
	return rep
}

func failoverOf(t *testing.T, rep *checks.Report, fault int, svc string) checks.ServiceFailover {
	t.Helper()
	for _, fo := range rep.Faults[fault].Failover {
		if fo.Service == svc {
			return fo
		}
	}
	t.Fatalf("no failover of %s under fault %d", svc, fault+1)
	return checks.ServiceFailover{}
}

// The outage is measured from the first refusal (a read-only sample at
// +7.0 s) to the first evidence of writes again: the sample at +18.5 s
// (samples come every 0.5 s; the bulk write invoked at +18.45 s is
// acknowledged only at +18.53 s).
func TestFailoverOutageIsMeasured(t *testing.T) {
	rep := slowDocstore(t, checks.Options{Failover: map[string]time.Duration{"bulk-db": 20 * time.Second}})
	fo := failoverOf(t, rep, 1, "bulk-db")
	require.NotNil(t, fo.Outage)
	require.Equal(t, isolateAt+7*time.Second, fo.Outage.From.D())
	require.Equal(t, isolateAt+18500*time.Millisecond, fo.Outage.To.D())
	require.Equal(t, 11500*time.Millisecond, fo.Outage.Duration.D())
	require.False(t, fo.Outage.Open)
	require.Equal(t, 20*time.Second, fo.Budget.D())
	require.Equal(t, "degraded", fo.Predicted)
	// Steady as analyze predicts from the first sample after the outage;
	// back to full strength 2 s after the heal (the synthetic detection lag).
	require.NotNil(t, fo.Steady)
	require.Equal(t, 18500*time.Millisecond, fo.Steady.D())
	require.NotNil(t, fo.FullStrength)
	require.Equal(t, 2*time.Second, fo.FullStrength.D())
	require.Equal(t, checks.SourceExpect, rep.Budgets["bulk-db"].Source)
}

// A slow but correct failover, within the budget, passes — where the old
// fixed 15 s settle grace compared the read-only samples from +15 s to
// +18.1 s with analyze's "degraded" and reported quorum lost.
func TestSlowFailoverWithinBudgetPasses(t *testing.T) {
	rep := slowDocstore(t, checks.Options{Failover: map[string]time.Duration{"bulk-db": 20 * time.Second}})
	fo := failoverOf(t, rep, 1, "bulk-db")
	require.Greater(t, fo.Outage.To.D(), isolateAt+15*time.Second, "the outage outlasts the old grace")
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))

	// The engine-derived default (Patroni 15 s + 50%) passes it too.
	rep = slowDocstore(t, checks.Options{})
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
	require.Equal(t, checks.SourceTable, rep.Budgets["bulk-db"].Source)
}

// Negative control: the same outage with a 1 s budget fails the failover
// check — naming the service, the measured outage and the budget — and is
// never a quorum mismatch.
func TestSlowFailoverOverBudgetFails(t *testing.T) {
	rep := slowDocstore(t, checks.Options{Failover: map[string]time.Duration{"bulk-db": time.Second}})
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	fs := findings(rep, checks.CheckFailover, checks.SevFail)
	require.Len(t, fs, 1)
	require.Equal(t, "bulk-db", fs[0].Service)
	require.Equal(t, 1, *fs[0].Fault)
	require.Contains(t, fs[0].Message, "bulk-db refused writes for 11.5s")
	require.Contains(t, fs[0].Message, "over its failover budget of 1s (expect.failover")
	require.Equal(t, checks.Liveness, rep.Check(checks.CheckFailover).Class)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
	require.Equal(t, checks.Fail, rep.Check(checks.CheckFailover).PerFault[1].Status)
	require.Equal(t, checks.Pass, rep.Check(checks.CheckFailover).PerFault[0].Status)

	// expect.failover for every service does the same.
	rep = slowDocstore(t, checks.Options{FailoverAll: time.Second})
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
}

// Writes that never resume while the fault lasts are quorum lost, judged
// by the quorum check once the budget has passed, not a slow failover.
func TestOutageLastingTheFaultIsQuorumLost(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{WriteOutage: map[int]synth.WriteOutage{
		1: {Service: "bulk-db", From: 7 * time.Second, To: time.Minute}}})
	rep := judge(t, sc, run)
	fo := failoverOf(t, rep, 1, "bulk-db")
	require.True(t, fo.Outage.Open)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	fs := findings(rep, checks.CheckQuorum, checks.SevFail)
	require.NotEmpty(t, fs)
	require.Equal(t, isolateAt+22500*time.Millisecond, fs[0].From.D(), "compared from the Patroni budget on")
}

// A probe that timed out is unknown: never compared with analyze, counted
// apart. Negative control: the same probe recorded as the old sampler did
// ("read-only", as a Kafka probe that took 2,001 ms in warmup was) fails
// the run.
func TestProbeTimeoutIsNotCompared(t *testing.T) {
	sc := quickstart(t)
	at := 50 * time.Second // baseline, no fault
	run := generate(t, sc, synth.Config{ProbeTimeouts: []synth.ProbeTimeout{{Service: "kafka", T: at}}})
	rep := judge(t, sc, run)
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
	require.Equal(t, int64(1), rep.Check(checks.CheckQuorum).Counts["probeTimeouts"])
	for _, tl := range rep.Series.Services {
		if tl.Service == "kafka" {
			require.Equal(t, 1, tl.ProbeTimeouts)
		}
	}
	var timeouts []string
	for _, f := range findings(rep, checks.CheckQuorum, checks.SevInfo) {
		timeouts = append(timeouts, f.Message)
	}
	require.Contains(t, strings.Join(timeouts, "\n"), "kafka: 1 probe timed out")

	run = generate(t, sc, synth.Config{})
	no := false
	run.Events = append(run.Events, history.Event{T: at + 100*time.Millisecond, Took: 2001 * time.Millisecond, Type: history.Sample,
		Service: "kafka", Observed: "read-only", MembersUp: 2, Writable: &no})
	rep = judge(t, sc, run)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
}

// A probe timeout during a fault is counted on that fault's failover.
func TestProbeTimeoutCountedPerFault(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{ProbeTimeouts: []synth.ProbeTimeout{{Service: "cache", T: isolateAt + 5*time.Second}}})
	rep := judge(t, sc, run)
	require.Equal(t, 1, failoverOf(t, rep, 1, "cache").ProbeTimeouts)
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
}

// A scheduler slip over 1 s is a warning finding and shows on the fault;
// it changes no status.
func TestSchedulerSlipIsReported(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	for i, e := range run.Events {
		if e.Type == history.Fault && e.Target == "site/dc3" {
			run.Events[i].Late = 1500 * time.Millisecond
		}
	}
	rep := judge(t, sc, run)
	require.Equal(t, checks.Pass, rep.Verdict, rep.Why)
	require.Equal(t, 1500*time.Millisecond, rep.Faults[1].InjectLate.D())
	require.Equal(t, 1500*time.Millisecond, rep.Faults[1].RecoverLate.D())
	require.Zero(t, rep.Faults[0].InjectLate)
	var msgs []string
	for _, f := range findings(rep, checks.CheckFaultEffect, checks.SevWarning) {
		msgs = append(msgs, f.Message)
	}
	require.Contains(t, msgs, "fault 2 (isolate site/dc3) injected 1.5s after its planned time (scheduler slip over 1s)")
	require.Contains(t, msgs, "fault 2 (isolate site/dc3) healed 1.5s after its planned time (scheduler slip over 1s)")

	// Negative control: 900 ms is within tolerance.
	for i, e := range run.Events {
		if e.Type == history.Fault {
			run.Events[i].Late = 900 * time.Millisecond
		}
	}
	rep = judge(t, sc, run)
	require.Empty(t, findings(rep, checks.CheckFaultEffect, checks.SevWarning))
}

// The service's own writes are evidence too: with no sample of the
// document store from +18 s to +21 s, the bulk write invoked at +18.45 s
// and acknowledged at +18.53 s (80 ms under the fault) ends the outage.
// An unknown outcome (info) is no evidence.
func TestOutageEndsAtFirstAcknowledgedWrite(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{WriteOutage: map[int]synth.WriteOutage{
		1: {Service: "bulk-db", From: 7 * time.Second, To: 18100 * time.Millisecond}}})
	var kept []history.Event
	for _, e := range run.Events {
		gap := e.T > isolateAt+18*time.Second && e.T < isolateAt+21*time.Second
		if e.Type == history.Sample && e.Service == "bulk-db" && gap {
			continue
		}
		kept = append(kept, e)
	}
	run.Events = kept
	fo := failoverOf(t, judge(t, sc, run), 1, "bulk-db")
	require.Equal(t, isolateAt+18530*time.Millisecond, fo.Outage.To.D())

	// The same write with an unknown outcome: the next accepted one ends it.
	for i, e := range run.Events {
		if e.Op == history.OpBulk && e.Type == history.OK && e.T == isolateAt+18530*time.Millisecond {
			run.Events[i].Type = history.Info
		}
	}
	fo = failoverOf(t, judge(t, sc, run), 1, "bulk-db")
	require.Equal(t, isolateAt+19030*time.Millisecond, fo.Outage.To.D())
}

// kafkaOutage: Kafka refuses writes from +7 s to +25 s after the
// isolation, and its probes time out from timedOutFrom until the outage
// ends (none when timedOutFrom is 0).
func kafkaOutage(t *testing.T, timedOutFrom time.Duration) *checks.Report {
	t.Helper()
	sc := quickstart(t)
	var pts []synth.ProbeTimeout
	for at := timedOutFrom; timedOutFrom > 0 && at < 25*time.Second; at += 500 * time.Millisecond {
		pts = append(pts, synth.ProbeTimeout{Service: "kafka", T: isolateAt + at})
	}
	run := generate(t, sc, synth.Config{ProbeTimeouts: pts, WriteOutage: map[int]synth.WriteOutage{
		1: {Service: "kafka", From: 7 * time.Second, To: 25 * time.Second}}})
	return judge(t, sc, run)
}

// An outage over the budget only through timed-out probes is unknown:
// Kafka refused writes at +7 s and +8.5 s, then no probe answered until
// writes were seen again at +25 s, so it lasted between 1.5 s and 18 s
// against its 12 s budget (stop 32's quickstart, qs12: "kafka refused
// writes for 18.4s", every probe in it timed out but the first). Negative
// controls: the same outage seen throughout, or seen refusing past the
// budget before its probes timed out, fails.
func TestOutageAcrossTimedOutProbesIsUnknown(t *testing.T) {
	rep := kafkaOutage(t, 9*time.Second)
	require.Equal(t, checks.Unknown, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
	fs := findings(rep, checks.CheckFailover, checks.SevUnknown)
	require.Len(t, fs, 1)
	require.Equal(t, "kafka", fs[0].Service)
	require.Contains(t, fs[0].Message, "kafka refused writes for at least 1.5s and at most 18s")
	require.Contains(t, fs[0].Message, "no evidence of its writes from +139.5s to +156.0s")
	fo := failoverOf(t, rep, 1, "kafka")
	require.Equal(t, isolateAt+8500*time.Millisecond, fo.Outage.Refused.D())
	require.Equal(t, checks.Unknown, rep.Check(checks.CheckFailover).PerFault[1].Status)

	rep = kafkaOutage(t, 0)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
	require.Contains(t, findings(rep, checks.CheckFailover, checks.SevFail)[0].Message, "kafka refused writes for 18s")

	rep = kafkaOutage(t, 21*time.Second)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckFailover), dump(rep, checks.CheckFailover))
}
