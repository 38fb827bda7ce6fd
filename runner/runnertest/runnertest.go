// Package runnertest holds what the tests that run chaosloop's whole job
// share, whatever the backend: scenario parsing, the run's log, and the
// negative controls' scenarios and verdicts.
package runnertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Parse decodes, defaults and validates a scenario source.
func Parse(t testing.TB, name, src string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Decode(name+".yaml", []byte(src))
	require.NoError(t, err)
	d := s.WithDefaults()
	require.NoError(t, d.Validate())
	return d
}

// LogReport logs a run's phases and checks, with the findings of every
// check that did not pass.
func LogReport(t testing.TB, rep *checks.Report) {
	t.Helper()
	for _, p := range rep.Phases {
		t.Logf("phase %-28s %5.1f/s ok %d errors %d dropped %d p50 %v p99 %v",
			p.Name, p.Throughput, p.OK, p.Errors, p.Dropped, p.P50, p.P99)
	}
	for _, c := range rep.Checks {
		t.Logf("%-24s %-7s %s", c.ID, c.Status, c.Summary)
		for _, pf := range c.PerFault {
			t.Logf("    fault %d %s: %s", pf.Fault+1, pf.Status, pf.Summary)
		}
		if c.Status != checks.Pass {
			for _, f := range c.Findings {
				t.Logf("    %s: %s", f.Severity, f.Message)
			}
		}
	}
}

// GaleraRack is the Galera negative control: two of three Galera members
// share rack a/r1, which loses power under load. extraNodes are added to
// site c's rack (a backend's control plane).
func GaleraRack(name, extraNodes string) string {
	return `name: ` + name + `
sites:
  - name: a
    racks:
      - {name: r1, power: [a-p1], switches: [a-s1], nodes: [{name: a1, pools: [DB]}, {name: a2, pools: [DB]}]}
      - {name: r2, power: [a-p2], switches: [a-s2], nodes: [{name: a3, pools: [K, R, APP]}]}
  - {name: b, racks: [{name: r1, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [DB, K, R, APP]}]}]}
  - {name: c, racks: [{name: r1, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [K, R, APP]}` + extraNodes + `]}]}
services:
  - {name: ledger, kind: mysql, pool: DB, placement: [a1, a2, b1]}
  - {name: kafka, kind: kafka, pool: K, spread: site, partitions: 3}
  - {name: cache, kind: redis, pool: R, spread: site}
  - {name: handlers, kind: stateless, pool: APP, spread: site}
load: {rate: 30, duration: 75s, warmup: 15s, participants: 4}
faults:
  - {at: 15s, for: 35s, action: power-off, target: rack/a/r1}
expect: {quorum: held, throughput: 0.3, recovery: 60s}
`
}

// RequireGaleraQuorumFail requires GaleraRack's verdict: quorum FAIL with
// the ledger's loss as the finding, exit 4, and no acknowledged money
// lost.
func RequireGaleraQuorumFail(t testing.TB, rep *checks.Report) {
	t.Helper()
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
	// Losing quorum must not lose acknowledged money.
	require.Equal(t, checks.Pass, rep.Check("acknowledged-transfers").Status)
	require.Equal(t, checks.Pass, rep.Check("money-conserved").Status)
}
