package labtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Judged is the service whose observed state each fault is judged by: a
// Raft quorum, which every backend runs and whose members' health a
// probe sees from the member itself.
const Judged = "quorum"

// Source is the suite's scenario: one site, three racks of one node, a
// three-member Raft service spread over the racks and a stateless one.
// Small, so that it comes up fast on a busy machine.
func Source(name string) string {
	return fmt.Sprintf(`name: %s
sites:
  - name: a
    racks:
      - {name: r1, power: [p1], switches: [s1], nodes: [{name: n1, pools: [P]}]}
      - {name: r2, power: [p2], switches: [s2], nodes: [{name: n2, pools: [P]}]}
      - {name: r3, power: [p3], switches: [s3], nodes: [{name: n3, pools: [P]}]}
services:
  - {name: %s, kind: etcd, pool: P, spread: rack}
  - {name: app, kind: stateless, pool: P, spread: rack}
`, name, Judged)
}

// Parse decodes and validates the suite's scenario.
func Parse(name, src string) (*scenarios.Scenario, error) {
	s, err := scenarios.Decode(name+".yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	d := s.WithDefaults()
	return d, d.Validate()
}

// FaultCase is one fault and the verdict analyze predicts for the judged
// service while it is in place.
type FaultCase struct {
	Fault lab.Fault
	Want  topology.Verdict
}

// FaultCases are one fault of every action on the node or member of the
// judged service's member 0, with analyze's prediction. A fault on a
// member is predicted as that member's loss, as the checks model it.
func FaultCases(sc *scenarios.Scenario) []FaultCase {
	node := "node/n1"
	member := "service/" + Judged + "/0"
	fs := []lab.Fault{
		{Action: scenarios.ActionPowerOff, Target: node},
		{Action: scenarios.ActionIsolate, Target: node},
		{Action: scenarios.ActionKill, Target: member},
		{Action: scenarios.ActionPause, Target: member},
		{Action: scenarios.ActionLatency, Target: node, Delay: 50 * time.Millisecond},
		{Action: scenarios.ActionDestroy, Target: node},
	}
	topo, err := topology.Build(sc)
	if err != nil {
		panic(err) // the suite's own scenario
	}
	var out []FaultCase
	for _, f := range fs {
		out = append(out, FaultCase{Fault: f, Want: predict(topo, f)})
	}
	return out
}

// predict is analyze's verdict for the judged service under f.
func predict(topo *topology.Topology, f lab.Fault) topology.Verdict {
	st := topology.NewState(topo)
	tg, _ := scenarios.ParseTarget(f.Target)
	mf := topology.Fault{Action: f.Action, Target: tg}
	if tg.Kind == scenarios.TargetService {
		// A killed or paused member is modelled as its node's loss.
		mf = topology.Fault{Action: scenarios.ActionPowerOff, Target: scenarios.Target{Kind: scenarios.TargetNode, Name: "n1"}}
	}
	if err := st.Apply(mf); err != nil {
		panic(err)
	}
	return st.Judge(topo.Service(Judged)).Verdict
}

// checkFault injects c's fault, requires it recorded and its predicted
// effect observed within the service's failover budget (plus slack for a
// busy machine), then recovers it and requires the lab healthy again.
func checkFault(t *testing.T, l lab.Lab, c FaultCase) {
	ctx := context.Background()
	require.NoError(t, AllHealthy(ctx, l), "healthy before the fault")
	inj, err := l.Inject(ctx, c.Fault)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.RecoverAll(context.Background()) })
	require.True(t, slices.ContainsFunc(l.ActiveFaults(), func(a lab.Injected) bool { return a.Key() == inj.Key() }), "the fault is recorded")
	again, err := l.Inject(ctx, c.Fault)
	require.NoError(t, err)
	require.Equal(t, inj.Key(), again.Key(), "injecting it twice is one fault")

	budget := l.FailoverBudgets()[Judged].Budget + 15*time.Second
	trail, ok := settle(ctx, l, c.Want.String(), budget)
	require.True(t, ok, "%s: analyze predicts %s for %s; observed within %s: %s", c.Fault.Key(), c.Want, Judged, budget, strings.Join(trail, ", "))

	require.NoError(t, l.Recover(ctx, c.Fault))
	require.Empty(t, l.ActiveFaults(), "recovered")
	Eventually(t, 3*time.Minute, "healthy after "+c.Fault.Key()+" recovered", func() error { return AllHealthy(ctx, l) })
}

// settle samples the judged service until it shows want on three samples
// in a row; a probe that timed out (unknown) is no evidence either way.
func settle(ctx context.Context, l lab.Lab, want string, within time.Duration) ([]string, bool) {
	start := time.Now()
	var trail []string
	streak := 0
	for time.Since(start) < within {
		obs := "error"
		if si, err := l.ServiceStatus(ctx, Judged); err == nil {
			obs, _, _ = lab.Observe(si)
		}
		if n := len(trail); n == 0 || !strings.HasPrefix(trail[n-1], obs+"@") {
			trail = append(trail, fmt.Sprintf("%s@%.1fs", obs, time.Since(start).Seconds()))
		}
		switch obs {
		case want:
			streak++
		case lab.Unknown:
		default:
			streak = 0
		}
		if streak >= 3 {
			return trail, true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return trail, false
}
