package runner_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/load/wire"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/runner"
	"github.com/chaosloop/chaosloop/runner/runnertest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// These tests run chaosloop's whole job on the local lab: real engines, real
// faults, transfer load, and the checks. Each negative control is a
// scenario built to fail, and chaosloop must say so.

// binary builds chaosloop once: the handler workers run it.
func binary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chaosloop")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func parse(t *testing.T, name, src string) *scenarios.Scenario { return runnertest.Parse(t, name, src) }

// run runs sc on a fresh lab. The run directory and the lab's state live
// in the test's evidence directory (enginetest.NewEvidence): when the test
// fails they are kept there, with the handler and engine logs, and the
// path is printed; when it passes they are removed.
func run(t testing.TB, sc *scenarios.Scenario, seed uint64) (*local.Options, *runner.Result) {
	t.Helper()
	lo, ev := testLab(t, sc.Name)
	lo.Seed = seed // the seed drives the lab's faults too
	res, err := runner.Run(context.Background(), runner.Options{
		Scenario: sc, Provider: local.NewProvider(lo), RunsDir: ev.Sub("runs"), Seed: seed, Binary: binary(t), Log: enginetest.ProcessLog(),
	})
	require.NoError(t, err)
	require.NotNil(t, res.Report)
	runnertest.LogReport(t, res.Report)
	return &lo, res
}

// testLab returns lab options whose state lives in the test's evidence
// directory, and brings the lab named name down when the test ends, its
// engine logs kept with the evidence when the test failed.
func testLab(t testing.TB, name string) (local.Options, *enginetest.Evidence) {
	t.Helper()
	ev := enginetest.NewEvidence(t)
	lo := local.Options{Root: ev.WorkDir("lab"), Cache: filepath.Join(os.TempDir(), "chaosloop-test-cache"), Log: enginetest.ProcessLog()}
	t.Cleanup(func() {
		// The lab's teardown deletes its state, logs included.
		ev.Save(filepath.Join(lo.StateDir(name), "logs"), "logs")
		if err := local.DownByName(context.Background(), lo, name); err != nil {
			t.Logf("down: %v", err)
		}
	})
	return lo, ev
}

// TestQuickstartPasses: the quickstart layout survives a rack power-off and
// a site isolation under load, and the report says why. Times are
// shortened from the example file; the layout and the faults are the same.
func TestQuickstartPasses(t *testing.T) {
	enginetest.RequireRoot(t)
	src, err := os.ReadFile("../scenarios/quickstart.yaml")
	require.NoError(t, err)
	sc := parse(t, "quickstart", string(src))
	// Its own name, so that a quickstart lab a developer left up is not touched.
	sc.Name = "quickstart-test"
	rate := 30.0
	sc.Load.Rate = &rate
	// As in the example file, 30 s between the first fault's heal and the
	// second fault, and the recovery budget's worth of load after it.
	sc.Load.Duration = &scenarios.Duration{Duration: 140 * time.Second}
	sc.Load.Warmup = &scenarios.Duration{Duration: 15 * time.Second}
	require.Len(t, sc.Faults, 2)
	sc.Faults[0].At, sc.Faults[0].For = &scenarios.Duration{Duration: 20 * time.Second}, &scenarios.Duration{Duration: 30 * time.Second}
	sc.Faults[1].At, sc.Faults[1].For = &scenarios.Duration{Duration: 80 * time.Second}, &scenarios.Duration{Duration: 25 * time.Second}
	require.Equal(t, "rack/dc1/r1", sc.Faults[0].Target)
	require.Equal(t, "site/dc3", sc.Faults[1].Target)

	_, res := run(t, sc, 42)
	rep := res.Report
	require.Equal(t, checks.Pass, rep.Verdict, "why: %v", rep.Why)
	require.Equal(t, 0, rep.ExitCode)
	for _, c := range rep.Checks {
		require.Equal(t, checks.Pass, c.Status, "%s: %s", c.ID, c.Summary)
	}
	require.NotEmpty(t, rep.Why)
	for _, f := range []string{"report.json", "junit.xml", "report.html", "history.jsonl", "final-state.json", runner.PlanFile, runner.ScenarioFile} {
		require.FileExists(t, filepath.Join(res.Dir, f))
	}
}

// TestGaleraTwoInOneRackFailsQuorum: two of three Galera members share a
// rack, the rack loses power: chaosloop must report FAIL on quorum.
func TestGaleraTwoInOneRackFailsQuorum(t *testing.T) {
	enginetest.RequireRoot(t)
	sc := parse(t, "neg-galera", runnertest.GaleraRack("neg-galera", ""))
	_, res := run(t, sc, 7)
	runnertest.RequireGaleraQuorumFail(t, res.Report)
}

// TestPartitionedRedisLosesWritesAndIdleFaultIsFlagged: site a, holding the
// Redis primary, is cut off under load; clients entering there keep writing
// to the old primary while Sentinel promotes a replica elsewhere, and the
// writes it acknowledged are gone after the heal: the report must list
// them, and they must really be missing from Redis. A second fault —
// one PDU of a dual-fed rack — changes nothing and must be flagged.
func TestPartitionedRedisLosesWritesAndIdleFaultIsFlagged(t *testing.T) {
	enginetest.RequireRoot(t)
	sc := parse(t, "neg-redis", `name: neg-redis
sites:
  - {name: a, racks: [{name: r1, power: [a-p1, a-p2], switches: [a-s], nodes: [{name: a1, pools: [R, APP]}, {name: a2, pools: [DB, K]}]}]}
  - {name: b, racks: [{name: r1, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [R, APP]}, {name: b2, pools: [DB, K]}]}]}
  - {name: c, racks: [{name: r1, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [R, APP]}, {name: c2, pools: [DB, K]}]}]}
services:
  - {name: cache, kind: redis, pool: R, spread: site}
  - {name: ledger, kind: mysql, pool: DB, spread: site}
  - {name: kafka, kind: kafka, pool: K, spread: site, partitions: 3}
  - {name: handlers, kind: stateless, pool: APP, spread: site}
load: {rate: 40, duration: 95s, warmup: 15s, participants: 4}
faults:
  - {at: 15s, for: 30s, action: isolate, target: site/a}
  - {at: 65s, for: 20s, action: power-off, target: feed/a-p2}
expect: {quorum: any, throughput: 0.1, recovery: 60s}
`)
	lo, res := run(t, sc, 11)
	rep := res.Report

	w := rep.Check("replicas-and-writes")
	require.NotNil(t, w)
	lost := w.Counts["redisLost"]
	require.Positive(t, lost, "the partitioned primary acknowledged writes that are gone: %s", w.Summary)
	var ids []string
	for _, f := range w.Findings {
		if f.Service == "cache" || strings.Contains(strings.ToLower(f.Message), "redis") {
			ids = append(ids, f.IDs...)
		}
	}
	require.NotEmpty(t, ids, "the lost writes are listed: %+v", w.Findings)

	// Independently of the checker: those keys are really not in Redis.
	l, err := local.Open(context.Background(), *lo, sc.Name)
	require.NoError(t, err)
	c, err := l.Cluster("cache")
	require.NoError(t, err)
	fo := redis.FailoverOptions(c)
	fo.Dialer = l.DialFromHostOf
	cli := goredis.NewFailoverClient(fo)
	defer cli.Close()
	for _, id := range ids {
		n, err := cli.Exists(context.Background(), wire.DedupeKeyPrefix+id).Result()
		require.NoError(t, err)
		require.Zero(t, n, "listed as lost but present: %s", id)
	}

	e := rep.Check("fault-effect")
	require.NotNil(t, e)
	require.Equal(t, checks.Fail, e.Status, e.Summary)
	require.Len(t, e.PerFault, 2)
	require.Equal(t, checks.Fail, e.PerFault[1].Status, "one PDU of a dual-fed rack changes nothing: %+v", e.PerFault[1])
	require.NotEqual(t, 0, rep.ExitCode)
	t.Logf("%d acknowledged Redis writes lost, e.g. %s", lost, fmt.Sprint(ids[:min(3, len(ids))]))
}
