package checks_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
	"github.com/chaosloop/chaosloop/scenarios"
)

// quickstart is scenarios/quickstart.yaml at a lighter rate (the checks do
// not care about volume; the tests stay fast).
func quickstart(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("../../scenarios/quickstart.yaml")
	require.NoError(t, err)
	r := 20.0
	sc.Load.Rate = &r
	return sc
}

func generate(t *testing.T, sc *scenarios.Scenario, cfg synth.Config) *synth.Run {
	t.Helper()
	run, err := synth.Generate(sc, cfg)
	require.NoError(t, err)
	return run
}

func judge(t *testing.T, sc *scenarios.Scenario, run *synth.Run) *checks.Report {
	t.Helper()
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final, Seed: 7}, checks.Options{})
	require.NoError(t, err)
	return rep
}

func status(t *testing.T, rep *checks.Report, id string) checks.Status {
	t.Helper()
	c := rep.Check(id)
	require.NotNil(t, c, id)
	return c.Status
}

// dump prints a check for a failing test.
func dump(rep *checks.Report, id string) string {
	b, _ := json.MarshalIndent(rep.Check(id), "", "  ")
	return string(b)
}

// findings returns the messages of a check's findings with a severity.
func findings(rep *checks.Report, id, sev string) []checks.Finding {
	var out []checks.Finding
	for _, f := range rep.Check(id).Findings {
		if f.Severity == sev {
			out = append(out, f)
		}
	}
	return out
}

func requireOnly(t *testing.T, rep *checks.Report, id string, want checks.Status) {
	t.Helper()
	require.Equal(t, want, status(t, rep, id), dump(rep, id))
	for _, c := range rep.Checks {
		if c.ID != id {
			require.Equal(t, checks.Pass, c.Status, "%s should pass: %s", c.ID, dump(rep, c.ID))
		}
	}
}

func TestCleanRunPasses(t *testing.T) {
	sc := quickstart(t)
	rep := judge(t, sc, generate(t, sc, synth.Config{}))
	for _, c := range rep.Checks {
		require.Equal(t, checks.Pass, c.Status, dump(rep, c.ID))
		require.Len(t, c.PerFault, 2, c.ID)
		for _, pf := range c.PerFault {
			require.Equal(t, checks.Pass, pf.Status, "%s fault %d: %s", c.ID, pf.Fault, pf.Summary)
		}
	}
	require.Equal(t, checks.Pass, rep.Verdict)
	require.Equal(t, checks.ExitPass, rep.ExitCode)
	require.Equal(t, "quickstart", rep.Scenario)
	require.Equal(t, uint64(7), rep.Seed)
	require.InDelta(t, 20, rep.Series.Baseline, 0.5)
	require.Len(t, rep.Faults, 2)
	require.Equal(t, "power-off rack/dc1/r1", rep.Faults[0].Name)
	require.NotEmpty(t, rep.Faults[0].Effects)
	require.NotNil(t, rep.Faults[0].Recovery)
	// analyze's single-fault prediction is in the report.
	require.Contains(t, rep.Faults[0].Predicted, checks.ServicePrediction{Service: "central-ledger-db", Verdict: "degraded", MembersUp: 2, Members: 3})
	// Phases: warmup, baseline, each fault and what follows it.
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		if p.Name != "warmup" && !strings.HasPrefix(p.Name, "fault") {
			require.Positive(t, p.P99.D(), p.Name)
		}
	}
	require.Equal(t, []string{"warmup", "baseline", "fault 1: power-off rack/dc1/r1", "after fault 1", "fault 2: isolate site/dc3", "after fault 2"}, names)
}

// The report is a pure function of its input.
func TestDeterministic(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{RedisLoss: map[int]int{0: 3}})
	a, err := json.Marshal(judge(t, sc, run))
	require.NoError(t, err)
	b, err := json.Marshal(judge(t, sc, generate(t, sc, synth.Config{RedisLoss: map[int]int{0: 3}})))
	require.NoError(t, err)
	require.Equal(t, string(a), string(b))
}

// --- check 1 ---

// okDuring returns the id of an acknowledged transfer completed in [from, to).
func okDuring(t *testing.T, run *synth.Run, from, to time.Duration) string {
	t.Helper()
	for _, e := range run.Events {
		if e.Op == history.OpTransfer && e.Type == history.OK && e.T >= from && e.T < to {
			return e.ID
		}
	}
	t.Fatalf("no acknowledged transfer in [%s, %s)", from, to)
	return ""
}

func TestLostAcknowledgedTransferFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	// Load starts at 1s, warmup 20s: fault 1 is injected at 61s.
	id := okDuring(t, run, 70*time.Second, 80*time.Second)
	delete(run.Final.Transfers, id)
	rep := judge(t, sc, run)
	// Money is not conserved either (its position moves stay): only check
	// 1 is asserted alone below, via a second run.
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckAcknowledged), dump(rep, checks.CheckAcknowledged))
	require.Equal(t, checks.ExitSafety, rep.ExitCode)
	fs := findings(rep, checks.CheckAcknowledged, checks.SevFail)
	require.Len(t, fs, 1)
	require.Equal(t, []string{id}, fs[0].IDs)
	require.NotNil(t, fs[0].Fault)
	require.Equal(t, 0, *fs[0].Fault, "blamed on the rack power-off")
	c := rep.Check(checks.CheckAcknowledged)
	require.Equal(t, int64(1), c.Counts["lost"])
	require.Equal(t, checks.Fail, c.PerFault[0].Status)
	require.Equal(t, checks.Pass, c.PerFault[1].Status)
	require.Equal(t, checks.Fail, rep.Faults[0].Status)
}

func TestLostTransferAlone(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	id := okDuring(t, run, 30*time.Second, 40*time.Second)
	lt := run.Final.Transfers[id]
	lt.State = "RESERVED"
	run.Final.Transfers[id] = lt
	// Undo the commit so that the ledger stays balanced with the transfer
	// still reserved: the loss is the only fault.
	for i, pc := range run.Final.PositionChanges {
		if pc.TransferID == id && pc.Kind == "commit" {
			run.Final.PositionChanges = slices.Delete(run.Final.PositionChanges, i, i+1)
			fixPositions(run.Final)
			break
		}
	}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckAcknowledged, checks.Fail)
	require.Nil(t, findings(rep, checks.CheckAcknowledged, checks.SevFail)[0].Fault, "before any fault")
}

func TestLossWithinBudgetPasses(t *testing.T) {
	sc := quickstart(t)
	one := 1
	sc.Expect = &scenarios.Expect{AcknowledgedLoss: &one}
	run := generate(t, sc, synth.Config{})
	id := okDuring(t, run, 70*time.Second, 80*time.Second)
	lt := run.Final.Transfers[id]
	lt.State = "ABORTED"
	run.Final.Transfers[id] = lt
	rep := judge(t, sc, run)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckAcknowledged))
	ws := findings(rep, checks.CheckAcknowledged, checks.SevWarning)
	require.Len(t, ws, 1)
	require.Equal(t, []string{id}, ws[0].IDs)
}

func TestUnknownOutcomeIsNotALoss(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	id := okDuring(t, run, 70*time.Second, 80*time.Second)
	// The client timed out: the transfer may or may not have happened.
	for i, e := range run.Events {
		if e.ID == id && e.Op == history.OpTransfer && e.Type == history.OK {
			run.Events[i].Type = history.Info
		}
	}
	removeTransfer(run.Final, id)
	rep := judge(t, sc, run)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckAcknowledged), dump(rep, checks.CheckAcknowledged))
	c := rep.Check(checks.CheckAcknowledged)
	require.Equal(t, int64(1), c.Counts["unknownOutcome"])
	require.Equal(t, int64(0), c.Counts["unknownCommitted"])
}

func TestRefusedButCommittedFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	var id string
	for _, e := range run.Events {
		if e.Op == history.OpTransfer && e.Type == history.Fail {
			id = e.ID
			run.Final.Transfers[id] = history.LedgerTransfer{State: "COMMITTED", Rows: 1, Payer: e.Payer, Payee: e.Payee, Amount: e.Amount, Currency: e.Currency}
			break
		}
	}
	require.NotEmpty(t, id)
	rep := judge(t, sc, run)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckAcknowledged))
	require.Equal(t, int64(1), rep.Check(checks.CheckAcknowledged).Counts["failedButCommitted"])
}

func TestDuplicatedTransferFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	id := okDuring(t, run, 30*time.Second, 40*time.Second)
	lt := run.Final.Transfers[id]
	lt.Rows = 2
	run.Final.Transfers[id] = lt
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckAcknowledged, checks.Fail)
	require.Equal(t, int64(1), rep.Check(checks.CheckAcknowledged).Counts["duplicated"])
}

// --- check 2 ---

func TestPositionsNotSummingToZeroFail(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	run.Final.Positions[3].Value += 500
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckMoney, checks.Fail)
	fs := findings(rep, checks.CheckMoney, checks.SevFail)
	require.Len(t, fs, 2, dump(rep, checks.CheckMoney)) // the sum, and dfsp4's change rows disagreeing
	require.Contains(t, fs[0].Message, "USD: positions sum to 500, want 0")
	require.Equal(t, checks.ExitSafety, rep.ExitCode)
}

func TestInitialFundingIsAccountedFor(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	run.Final.Positions[0].Value += 1000
	// Shift dfsp1's whole change history by its funding, as a funded
	// ledger would have it.
	for i := range run.Final.PositionChanges {
		if run.Final.PositionChanges[i].Participant == "dfsp1" {
			run.Final.PositionChanges[i].Value += 1000
		}
	}
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final}, checks.Options{InitialPositions: map[string]int64{"USD": 1000}})
	require.NoError(t, err)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckMoney), dump(rep, checks.CheckMoney))
}

func TestPositionBeyondCapFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	// dfsp2's cap below what it reached at some point.
	peak := int64(0)
	for _, pc := range run.Final.PositionChanges {
		if pc.Participant == "dfsp2" && pc.Kind == "reserve" {
			peak = max(peak, pc.Value)
		}
	}
	require.Positive(t, peak)
	for i := range run.Final.Positions {
		if run.Final.Positions[i].Participant == "dfsp2" {
			run.Final.Positions[i].NetDebitCap = peak - 1
		}
	}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckMoney, checks.Fail)
	c := rep.Check(checks.CheckMoney)
	require.Positive(t, c.Counts["overCap"])
	require.Contains(t, findings(rep, checks.CheckMoney, checks.SevFail)[0].Message, "beyond its net debit cap")
}

func TestDuplicateMovingPositionTwiceFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	id := okDuring(t, run, 70*time.Second, 80*time.Second)
	// The reserve was processed twice (a redelivered prepare without the
	// duplicate check): the payer's position moved twice and stays so.
	var dup history.PositionChange
	for _, pc := range run.Final.PositionChanges {
		if pc.TransferID == id && pc.Kind == "reserve" {
			dup = pc
		}
	}
	appendChange(run.Final, dup)
	rep := judge(t, sc, run)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckMoney))
	c := rep.Check(checks.CheckMoney)
	require.Equal(t, int64(1), c.Counts["movedTwice"], dump(rep, checks.CheckMoney))
	var blamed bool
	for _, f := range findings(rep, checks.CheckMoney, checks.SevFail) {
		if strings.Contains(f.Message, "more than once") {
			require.Equal(t, []string{id}, f.IDs)
			require.Equal(t, 0, *f.Fault)
			blamed = true
		}
	}
	require.True(t, blamed)
	// Positions no longer sum to zero: the duplicate created money.
	require.Contains(t, findings(rep, checks.CheckMoney, checks.SevFail)[0].Message, fmt.Sprintf("positions sum to %d", dup.Change))
}

// --- check 3 ---

func TestProducedButUnconsumedFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	var gone history.Event
	for i, e := range run.Events {
		if e.Op == history.OpConsume && e.T > 110*time.Second {
			gone = e
			run.Events = slices.Delete(run.Events, i, i+1)
			break
		}
	}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckKafka, checks.Fail)
	fs := findings(rep, checks.CheckKafka, checks.SevFail)
	require.Len(t, fs, 1)
	require.Equal(t, []string{fmt.Sprintf("topic-transfer-prepare/%d@%d", gone.Partition, gone.Offset)}, fs[0].IDs)
	require.Equal(t, checks.ExitSafety, rep.ExitCode)
}

// When the run's final read of Kafka failed, a record it did not read
// back is unknown, not lost: UNKNOWN, never FAIL (a quickstart run on
// k3s whose final read could not reach a cut-off broker said "17056 of
// 17056 acknowledged records never consumed").
func TestUnreadAfterAFailedFinalReadIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	var kept []history.Event
	var end time.Duration
	for _, e := range run.Events {
		if e.Op != history.OpConsume || e.T < 110*time.Second {
			kept = append(kept, e)
		}
		end = max(end, e.T)
	}
	run.Events = append(kept, history.Event{T: end, Type: history.PhaseChange, Phase: "check",
		Error: history.ConsumeAllFailed + "kafka: end offsets of topic-transfer-prepare: unable to dial"})
	rep := judge(t, sc, run)
	require.Equal(t, checks.Unknown, status(t, rep, checks.CheckKafka), dump(rep, checks.CheckKafka))
	require.Empty(t, findings(rep, checks.CheckKafka, checks.SevFail))
	fs := findings(rep, checks.CheckKafka, checks.SevUnknown)
	require.NotEmpty(t, fs)
	require.Contains(t, fs[0].Message, "the run's final read of Kafka failed (kafka: end offsets of topic-transfer-prepare: unable to dial)")
	require.NotEqual(t, checks.ExitSafety, rep.ExitCode)
}

func TestOffsetReusedFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	// A second acknowledged record at an offset already acknowledged: the
	// log was truncated and rewritten (unclean leader election).
	var first history.Event
	for _, e := range run.Events {
		if e.Op == history.OpProduce && e.Type == history.OK {
			first = e
			break
		}
	}
	again := first
	again.ID, again.T = "tr-intruder", first.T+time.Second
	run.Events = append(run.Events, again)
	rep := judge(t, sc, run)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckKafka))
	require.Equal(t, int64(2), rep.Check(checks.CheckKafka).Counts["offsetReused"], dump(rep, checks.CheckKafka))
}

// --- check 4 ---

func TestDivergedReplicasFail(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	for i, v := range run.Final.Replicas {
		if v.Service == "central-ledger-db" && v.Member == 2 {
			run.Final.Replicas[i].Digest = "rows=1;crc=dead"
		}
	}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckReplicas, checks.Fail)
	fs := findings(rep, checks.CheckReplicas, checks.SevFail)
	require.Len(t, fs, 1)
	require.Equal(t, "central-ledger-db", fs[0].Service)
	require.Contains(t, fs[0].Message, "members 2: rows=1;crc=dead")
}

func TestRedisLossBeyondExpectationFails(t *testing.T) {
	// In the quickstart neither fault touches the Redis primary (member 0
	// on dc1-data, rack r2): analyze predicts no loss, so losses count.
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{RedisLoss: map[int]int{1: 4}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckReplicas, checks.Fail)
	c := rep.Check(checks.CheckReplicas)
	require.Equal(t, int64(4), c.Counts["redisLost"])
	require.Equal(t, int64(0), c.Counts["redisLostPredicted"])
	fs := findings(rep, checks.CheckReplicas, checks.SevFail)
	require.Len(t, fs, 1)
	require.Len(t, fs[0].IDs, 4)
	require.Equal(t, 1, *fs[0].Fault)
	require.Equal(t, checks.Fail, c.PerFault[1].Status)
	require.Equal(t, checks.ExitSafety, rep.ExitCode)
}

// partitionedPrimary cuts the site holding the Redis primary away: Sentinel
// fails over and analyze predicts acknowledged loss possible.
func partitionedPrimary(t *testing.T) *scenarios.Scenario {
	sc := quickstart(t)
	sc.Faults = []scenarios.Fault{{At: &scenarios.Duration{Duration: 40 * time.Second}, For: &scenarios.Duration{Duration: 40 * time.Second},
		Action: scenarios.ActionIsolate, Target: "site/dc1"}}
	return sc
}

func TestRedisLossUnderPredictedPartitionIsReported(t *testing.T) {
	sc := partitionedPrimary(t)
	run := generate(t, sc, synth.Config{RedisLoss: map[int]int{0: 5}})
	rep := judge(t, sc, run)
	require.Contains(t, rep.Faults[0].Predicted, checks.ServicePrediction{Service: "cache", Verdict: "degraded", MembersUp: 2, Members: 3, LossPossible: true})
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckReplicas), dump(rep, checks.CheckReplicas))
	c := rep.Check(checks.CheckReplicas)
	require.Equal(t, int64(5), c.Counts["redisLost"])
	require.Equal(t, int64(5), c.Counts["redisLostPredicted"])
	ws := findings(rep, checks.CheckReplicas, checks.SevWarning)
	require.Len(t, ws, 1)
	require.Len(t, ws[0].IDs, 5, "the lost writes are listed")
	require.Contains(t, ws[0].Message, "analyze predicted acknowledged loss possible")
	require.Contains(t, c.Summary, "5 lost as predicted")
}

func TestLostBulkWriteFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	for id := range run.Final.Bulk {
		if id == "bulk-000900" {
			delete(run.Final.Bulk, id)
		}
	}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckReplicas, checks.Fail)
	require.Equal(t, []string{"bulk-000900"}, findings(rep, checks.CheckReplicas, checks.SevFail)[0].IDs)
}

// --- check 5 ---

func TestQuorumDownWhilePredictedDegradedFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{ObservedDown: map[int]string{0: "central-ledger-db"}})
	rep := judge(t, sc, run)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	fs := findings(rep, checks.CheckQuorum, checks.SevFail)
	require.Len(t, fs, 1)
	require.Equal(t, "central-ledger-db", fs[0].Service)
	require.Contains(t, fs[0].Message, "observed down (0 up) where analyze predicts degraded")
	require.Equal(t, 0, *fs[0].Fault)
	// After the ledger's failover budget (22.5s, Galera's defaults), until
	// the samples recover.
	require.Equal(t, 61*time.Second+22500*time.Millisecond, fs[0].From.D())
	require.Equal(t, checks.Liveness, rep.Check(checks.CheckQuorum).Class)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

func TestQuorumAnyDisablesTheCheck(t *testing.T) {
	sc := quickstart(t)
	sc.Expect = &scenarios.Expect{Quorum: "any"}
	run := generate(t, sc, synth.Config{ObservedDown: map[int]string{0: "central-ledger-db"}})
	rep := judge(t, sc, run)
	require.Equal(t, checks.Skip, status(t, rep, checks.CheckQuorum))
	require.Equal(t, checks.ExitPass, rep.ExitCode, rep.Why)
	require.NotEmpty(t, findings(rep, checks.CheckQuorum, checks.SevInfo), "mismatches are still reported")
}

// Two of three Galera members in one rack, and that rack loses power: the
// layout cannot hold quorum and the run must say so.
func TestGaleraTwoMembersInOneRackFailsOnQuorum(t *testing.T) {
	sc := quickstart(t)
	sc.Sites[0].Racks[0].Nodes = append(sc.Sites[0].Racks[0].Nodes, scenarios.Node{Name: "dc1-db2", Pools: []string{"RDBMS-CENTRAL-LEDGER-LIVE"}})
	for i := range sc.Services {
		if sc.Services[i].Name == "central-ledger-db" {
			sc.Services[i].Placement = []string{"dc1-db", "dc1-db2", "dc2-db"}
		}
	}
	run := generate(t, sc, synth.Config{})
	rep := judge(t, sc, run)
	require.Contains(t, rep.Faults[0].Predicted, checks.ServicePrediction{Service: "central-ledger-db", Verdict: "read-only", MembersUp: 1, Members: 3})
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	fs := findings(rep, checks.CheckQuorum, checks.SevFail)
	require.Len(t, fs, 1)
	require.Contains(t, fs[0].Message, "quorum lost, as analyze predicts")
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

// --- check 6 ---

func TestThroughputCollapseFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Collapse: map[int]bool{1: true}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckThroughput, checks.Fail)
	c := rep.Check(checks.CheckThroughput)
	require.Equal(t, checks.Pass, c.PerFault[0].Status)
	require.Equal(t, checks.Fail, c.PerFault[1].Status)
	require.Less(t, *rep.Faults[1].ThroughputRatio, 0.2)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

func TestSlowRecoveryFails(t *testing.T) {
	sc := quickstart(t)
	// Leave room after the first heal for the 45s recovery budget (the
	// quickstart heals 30s before its next fault: a recovery slower than
	// that is UNKNOWN there, see TestRecoveryCutShortIsUnknown).
	sc.Faults[1].At = &scenarios.Duration{Duration: 170 * time.Second}
	sc.Faults[1].For = &scenarios.Duration{Duration: 10 * time.Second}
	run := generate(t, sc, synth.Config{SlowRecovery: map[int]time.Duration{0: 60 * time.Second}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckThroughput, checks.Fail)
	fs := findings(rep, checks.CheckThroughput, checks.SevFail)
	require.Len(t, fs, 1, dump(rep, checks.CheckThroughput))
	require.Contains(t, fs[0].Message, "slow recovery")
	require.Greater(t, rep.Faults[0].Recovery.D(), 45*time.Second)
}

func TestRecoveryCutShortIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{SlowRecovery: map[int]time.Duration{0: 60 * time.Second}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckThroughput, checks.Unknown)
	require.Contains(t, rep.Check(checks.CheckThroughput).PerFault[0].Summary, "the next fault began 30s after heal")
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

func TestShortBaselineIsUnknown(t *testing.T) {
	sc := quickstart(t)
	sc.Faults[0].At = &scenarios.Duration{Duration: 2 * time.Second}
	run := generate(t, sc, synth.Config{})
	rep := judge(t, sc, run)
	require.Equal(t, checks.Unknown, status(t, rep, checks.CheckThroughput))
	require.Equal(t, checks.Unknown, rep.Verdict)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

// --- check 7 ---

func TestFaultWithNoEffectFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Vacuous: map[int]bool{1: true}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckFaultEffect, checks.Fail)
	c := rep.Check(checks.CheckFaultEffect)
	require.Equal(t, checks.Pass, c.PerFault[0].Status)
	require.Equal(t, checks.Fail, c.PerFault[1].Status)
	require.Contains(t, c.PerFault[1].Summary, "changed nothing observable")
	require.Empty(t, rep.Faults[1].Effects)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
}

func TestFaultNeverInjectedFails(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{NotInjected: map[int]bool{1: true}})
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckFaultEffect, checks.Fail)
	require.False(t, rep.Faults[1].Injected)
	require.Equal(t, checks.Skip, rep.Check(checks.CheckThroughput).PerFault[1].Status)
}

// --- UNKNOWN ---

func TestUnreadableFinalStateIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, FinalError: "ledger: connection refused"}, checks.Options{})
	require.NoError(t, err)
	for _, id := range []string{checks.CheckAcknowledged, checks.CheckMoney, checks.CheckReplicas} {
		require.Equal(t, checks.Unknown, status(t, rep, id), dump(rep, id))
		require.Contains(t, rep.Check(id).Summary, "connection refused")
	}
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckKafka), "needs only the history")
	require.Equal(t, checks.Unknown, rep.Verdict)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
	require.Contains(t, rep.Why[0], "INCONCLUSIVE")
}

func TestPartlyUnreadableFinalState(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	run.Final.ReadErrors = map[string]string{checks.PartRedisKeys: "redis: all members down"}
	rep := judge(t, sc, run)
	requireOnly(t, rep, checks.CheckReplicas, checks.Unknown)
	run.Final.ReadErrors = map[string]string{checks.PartReplicas + "/bulk-db": "member 1 unreachable"}
	requireOnly(t, judge(t, sc, run), checks.CheckReplicas, checks.Unknown)
}

func TestSafetyOutranksLiveness(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Collapse: map[int]bool{0: true}})
	run.Final.Positions[0].Value++
	rep := judge(t, sc, run)
	require.Equal(t, checks.Fail, rep.Verdict)
	require.Equal(t, checks.ExitSafety, rep.ExitCode)
	require.Contains(t, strings.Join(rep.Why, "\n"), "Also liveness")
}

// helpers

func removeTransfer(f *history.Final, id string) {
	delete(f.Transfers, id)
	f.PositionChanges = slices.DeleteFunc(f.PositionChanges, func(pc history.PositionChange) bool { return pc.TransferID == id })
	fixPositions(f)
}

// appendChange adds a change row on top of the participant's history.
func appendChange(f *history.Final, pc history.PositionChange) {
	last := int64(0)
	for _, c := range f.PositionChanges {
		if c.Participant == pc.Participant && c.Currency == pc.Currency {
			last = c.Value
		}
	}
	pc.Value = last + pc.Change
	f.PositionChanges = append(f.PositionChanges, pc)
	fixPositions(f)
}

// fixPositions recomputes positions and change-row values from the changes.
func fixPositions(f *history.Final) {
	val := map[string]int64{}
	for i, pc := range f.PositionChanges {
		val[pc.Participant] += pc.Change
		f.PositionChanges[i].Value = val[pc.Participant]
	}
	for i := range f.Positions {
		f.Positions[i].Value = val[f.Positions[i].Participant]
	}
}

// A probe that started just before an inject and answered after it may
// show either state: it is compared with neither prediction, and it does
// not count as the state "before" the fault. A probe that answered before
// the inject is compared (the negative control).
func TestProbeStraddlingAnInjectIsNotJudged(t *testing.T) {
	sc := quickstart(t)
	inject := 61 * time.Second // load starts at 1s, warmup 20s, fault at 40s
	withProbe := func(took time.Duration) *checks.Report {
		run := generate(t, sc, synth.Config{})
		no := false
		run.Events = append(run.Events,
			history.Event{T: inject - 100*time.Millisecond, Took: took, Type: history.Sample, Service: "kafka", Observed: "read-only", Writable: &no},
			history.Event{T: inject - 100*time.Millisecond, Took: took, Type: history.Sample, Service: "central-ledger-db", Observed: "degraded", MembersUp: 2})
		return judge(t, sc, run)
	}
	rep := withProbe(time.Second)
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	require.Equal(t, checks.Pass, status(t, rep, checks.CheckFaultEffect), dump(rep, checks.CheckFaultEffect))
	require.Contains(t, strings.Join(rep.Faults[0].Effects, "; "), "central-ledger-db observed degraded")

	rep = withProbe(50 * time.Millisecond)
	require.Equal(t, checks.Fail, status(t, rep, checks.CheckQuorum), dump(rep, checks.CheckQuorum))
	require.Contains(t, findings(rep, checks.CheckQuorum, checks.SevFail)[0].Message, "kafka observed read-only")
}

// A stall with no fault active (every acknowledgement of 10 s of the
// baseline held back and delivered at once after it) makes the baseline
// unstable: the throughput check is UNKNOWN with that reason, never PASS
// or FAIL, and names the stretch.
func TestUnstableBaselineIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{})
	from, to := 30*time.Second, 40*time.Second // inside the baseline (warmup 20 s, first fault at +40 s)
	moved := 0
	for i, e := range run.Events {
		if e.Op == history.OpTransfer && e.Type == history.OK && e.T >= from && e.T < to {
			run.Events[i].T = to
			moved++
		}
	}
	require.Positive(t, moved)
	slices.SortStableFunc(run.Events, func(a, b history.Event) int { return int(a.T - b.T) })
	rep := judge(t, sc, run)
	c := rep.Check(checks.CheckThroughput)
	require.Equal(t, checks.Unknown, c.Status, dump(rep, checks.CheckThroughput))
	require.Contains(t, c.Summary, "baseline unstable")
	for _, pf := range c.PerFault {
		require.Equal(t, checks.Unknown, pf.Status)
	}
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)

	// Negative control: the same run without the stall passes.
	require.Equal(t, checks.Pass, status(t, judge(t, sc, generate(t, sc, synth.Config{})), checks.CheckThroughput))
}

// An idle fault that begins while the fault before it has not recovered
// must not be credited with that fault's drop (the "healthy before" rule):
// without the rule the slow recovery's refused arrivals would count as its
// effect and hide a vacuous fault.
func TestDropLeftByEarlierFaultIsNotAnEffect(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{
		SlowRecovery: map[int]time.Duration{0: 120 * time.Second},
		Vacuous:      map[int]bool{1: true},
	})
	rep := judge(t, sc, run)
	c := rep.Check(checks.CheckFaultEffect)
	require.Equal(t, checks.Fail, c.Status, dump(rep, checks.CheckFaultEffect))
	require.Equal(t, checks.Pass, c.PerFault[0].Status)
	require.Equal(t, checks.Fail, c.PerFault[1].Status)
	require.Contains(t, c.PerFault[1].Summary, "changed nothing observable")
	var warned bool
	for _, f := range findings(rep, checks.CheckFaultEffect, checks.SevWarning) {
		if f.Fault != nil && *f.Fault == 1 && strings.Contains(f.Message, "an earlier fault not recovered") {
			warned = true
		}
	}
	require.True(t, warned, dump(rep, checks.CheckFaultEffect))
}

// A baseline that acknowledges well below what is offered is building a
// backlog with no fault active: throughput cannot be judged against it.
func TestSaturatedBaselineIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Capacity: 0.6})
	rep := judge(t, sc, run)
	c := rep.Check(checks.CheckThroughput)
	require.Equal(t, checks.Unknown, c.Status, dump(rep, checks.CheckThroughput))
	require.Contains(t, c.Summary, "baseline saturated")
	require.Equal(t, checks.Unknown, c.PerFault[0].Status)
	require.Contains(t, c.PerFault[0].Summary, "baseline saturated")
}

// Just under capacity is no saturation: a baseline at 90 % of the offered
// rate (jitter, a short backlog) is judged as usual.
func TestNearlySaturatedBaselineIsJudged(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Capacity: 0.95})
	rep := judge(t, sc, run)
	require.NotContains(t, rep.Check(checks.CheckThroughput).Summary, "saturated", dump(rep, checks.CheckThroughput))
}

// slowDown delays the acknowledgement of every n-th transfer acknowledged
// in fault i's window by d, as a busy machine's hiccups do.
func slowDown(t *testing.T, sc *scenarios.Scenario, run *synth.Run, i, n int, d time.Duration) int {
	t.Helper()
	f := judge(t, sc, run).Faults[i]
	from, to := time.Duration(f.InjectAt), time.Duration(f.RecoverAt)
	k, moved := 0, 0
	for j, e := range run.Events {
		if e.Op != history.OpTransfer || e.Type != history.OK || e.T < from+2*time.Second || e.T >= to-2*time.Second {
			continue
		}
		if k++; k%n == 0 {
			run.Events[j].T += d
			moved++
		}
	}
	require.Positive(t, moved)
	slices.SortStableFunc(run.Events, func(a, b history.Event) int { return int(a.T - b.T) })
	return moved
}

// A fault that changes nothing stays vacuous when a few of its window's
// transfers are slow for another reason (2%: its p99 goes up fivefold,
// which a p99 rule counted as the fault's effect); a fault that slows a
// fifth of its transfers has an effect.
func TestLatencyHiccupsAreNotAnEffect(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Vacuous: map[int]bool{1: true}})
	slowDown(t, sc, run, 1, 50, 200*time.Millisecond)
	rep := judge(t, sc, run)
	c := rep.Check(checks.CheckFaultEffect)
	require.Equal(t, checks.Fail, c.PerFault[1].Status, dump(rep, checks.CheckFaultEffect))
	require.Contains(t, c.PerFault[1].Summary, "changed nothing observable")

	run = generate(t, sc, synth.Config{Vacuous: map[int]bool{1: true}})
	slowDown(t, sc, run, 1, 5, 200*time.Millisecond)
	rep = judge(t, sc, run)
	c = rep.Check(checks.CheckFaultEffect)
	require.Equal(t, checks.Pass, c.PerFault[1].Status, dump(rep, checks.CheckFaultEffect))
	require.Contains(t, c.PerFault[1].Summary, "of transfers took")
}

// A fault that went in before the system was back at full strength (the
// scheduler's settle event before it) is not judged against analyze's
// prediction, which assumes every member back: what would FAIL its quorum
// and throughput is UNKNOWN, with the reason.
func TestFaultOnWeakenedSystemIsUnknown(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{ObservedDown: map[int]string{1: "central-ledger-db"}, Collapse: map[int]bool{1: true}})
	var injectAt time.Duration
	n := 0
	for _, e := range run.Events {
		if e.Type == history.Fault && e.Phase == "inject" {
			if n == 1 {
				injectAt = e.T
			}
			n++
		}
	}
	require.NotZero(t, injectAt)
	settle := history.Event{T: injectAt - time.Millisecond, Type: history.Fault, Phase: "settle", Error: "not healthy after 45s: kafka not healthy"}
	i := slices.IndexFunc(run.Events, func(e history.Event) bool { return e.T >= settle.T })
	run.Events = slices.Insert(run.Events, i, settle)

	rep := judge(t, sc, run)
	for _, id := range []string{checks.CheckQuorum, checks.CheckThroughput} {
		c := rep.Check(id)
		require.Equal(t, checks.Unknown, c.PerFault[1].Status, dump(rep, id))
		require.Empty(t, findings(rep, id, checks.SevFail), dump(rep, id))
		var why []string
		for _, f := range findings(rep, id, checks.SevUnknown) {
			why = append(why, f.Message)
		}
		require.Contains(t, strings.Join(why, "\n"), "fault 2 went in before the system was back at full strength (not healthy after 45s: kafka not healthy)")
	}
	require.Empty(t, rep.Problems, "a settle event is understood")
}

// A burst of slow transfers a few seconds long, well after an idle
// fault went in, is a busy machine's hiccup, not the fault's effect: the
// runner's negative control (one PDU of a dual-fed rack off) had 87 of
// its 798 transfers slow, all within 4 s, 12 s after the inject (ci33),
// and passed as "10.9% of transfers took 387ms or longer". A slowdown
// through the window counts.
func TestLatencyBurstIsNotAnEffect(t *testing.T) {
	sc := quickstart(t)
	run := generate(t, sc, synth.Config{Vacuous: map[int]bool{1: true}})
	f := judge(t, sc, run).Faults[1]
	from := time.Duration(f.InjectAt) + 12*time.Second
	moved := 0
	for j, e := range run.Events {
		if e.Op == history.OpTransfer && e.Type == history.OK && e.T >= from && e.T < from+4*time.Second {
			run.Events[j].T += 2 * time.Second
			moved++
		}
	}
	require.Positive(t, moved)
	slices.SortStableFunc(run.Events, func(a, b history.Event) int { return int(a.T - b.T) })
	rep := judge(t, sc, run)
	c := rep.Check(checks.CheckFaultEffect)
	require.Equal(t, checks.Fail, c.PerFault[1].Status, dump(rep, checks.CheckFaultEffect))
	require.Contains(t, c.PerFault[1].Summary, "changed nothing observable")
}
