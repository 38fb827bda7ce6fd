package kind_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/runner"
	"github.com/chaosloop/chaosloop/scenarios"
)

// runOnKind runs sc with chaosloop's whole job on the kind backend: real
// engines in pods, real faults on the node containers, transfer load,
// the checks. The lab's state and the run directory are kept with the
// evidence when the test fails.
func runOnKind(t *testing.T, sc *scenarios.Scenario, seed uint64) *runner.Result {
	t.Helper()
	kindtest.Daemon(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	ev := enginetest.NewEvidence(t)
	root := ev.WorkDir("lab")
	p := kind.NewProvider(kind.Options{Root: root, Cache: filepath.Dir(kindtest.Cache), Log: enginetest.ProcessLog(),
		Runtime: []string{exe, kindtest.RuntimeArg}, DockerStateDir: kindtest.StateDir, Seed: seed})
	t.Cleanup(func() {
		ev.Save(filepath.Join(root, sc.Name, "logs"), "logs")
		if err := p.Down(context.Background(), sc.Name); err != nil {
			t.Logf("down: %v", err)
		}
	})
	bin := filepath.Join(t.TempDir(), "chaosloop")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	res, err := runner.Run(context.Background(), runner.Options{
		Scenario: sc, Provider: p, RunsDir: ev.Sub("runs"), Seed: seed, Binary: bin, Log: enginetest.ProcessLog(),
	})
	require.NoError(t, err)
	require.NotNil(t, res.Report)
	require.Equal(t, kind.Name, res.Report.Backend)
	for _, ph := range res.Report.Phases {
		t.Logf("phase %-28s %5.1f/s ok %d errors %d dropped %d p50 %v p99 %v",
			ph.Name, ph.Throughput, ph.OK, ph.Errors, ph.Dropped, ph.P50, ph.P99)
	}
	for _, c := range res.Report.Checks {
		t.Logf("%-24s %-7s %s", c.ID, c.Status, c.Summary)
		for _, f := range c.Findings {
			t.Logf("    %s: %s", f.Severity, f.Message)
		}
	}
	return res
}

func parse(t *testing.T, name, src string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Decode(name+".yaml", []byte(src))
	require.NoError(t, err)
	d := s.WithDefaults()
	require.NoError(t, d.Validate())
	return d
}

// TestGaleraTwoInOneRackFailsOnKind is the local lab's Galera negative
// control on kind: two of three Galera members share a rack, the rack
// loses power (its node containers are killed): chaosloop must report
// FAIL on quorum, and lose no acknowledged money. The control plane is a
// node of its own in another site, so the API is not what fails.
func TestGaleraTwoInOneRackFailsOnKind(t *testing.T) {
	sc := parse(t, "kneg-galera", `name: kneg-galera
sites:
  - name: a
    racks:
      - {name: r1, power: [a-p1], switches: [a-s1], nodes: [{name: a1, pools: [DB]}, {name: a2, pools: [DB]}]}
      - {name: r2, power: [a-p2], switches: [a-s2], nodes: [{name: a3, pools: [K, R, APP]}]}
  - {name: b, racks: [{name: r1, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [DB, K, R, APP]}]}]}
  - {name: c, racks: [{name: r1, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [K, R, APP]}, {name: cp, pools: [K3S-CONTROL-PLANE]}]}]}
services:
  - {name: ledger, kind: mysql, pool: DB, placement: [a1, a2, b1]}
  - {name: kafka, kind: kafka, pool: K, spread: site, partitions: 3}
  - {name: cache, kind: redis, pool: R, spread: site}
  - {name: handlers, kind: stateless, pool: APP, spread: site}
load: {rate: 30, duration: 75s, warmup: 15s, participants: 4}
faults:
  - {at: 15s, for: 35s, action: power-off, target: rack/a/r1}
expect: {quorum: held, throughput: 0.3, recovery: 60s}
`)
	rep := runOnKind(t, sc, 7).Report
	q := rep.Check("quorum")
	require.NotNil(t, q)
	require.Equal(t, checks.Fail, q.Status, q.Summary)
	require.Equal(t, 4, rep.ExitCode, "liveness violated: %v", rep.Why)
	found := false
	for _, f := range q.Findings {
		if f.Service == "ledger" && f.Severity == checks.SevFail {
			found = true
		}
	}
	require.True(t, found, "the ledger's quorum loss is the finding: %+v", q.Findings)
	require.Equal(t, checks.Pass, rep.Check("acknowledged-transfers").Status)
	require.Equal(t, checks.Pass, rep.Check("money-conserved").Status)
}
