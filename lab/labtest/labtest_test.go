package labtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/topology"
)

// The suite's scenario is valid and its faults' predictions are what the
// effect checks expect: losing one of three Raft members degrades, added
// latency changes nothing.
func TestScenarioAndPredictions(t *testing.T) {
	sc, err := Parse("conformance", Source("conformance"))
	require.NoError(t, err)
	got := map[string]topology.Verdict{}
	for _, c := range FaultCases(sc) {
		got[c.Fault.Action] = c.Want
	}
	require.Equal(t, map[string]topology.Verdict{
		"power-off": topology.Degraded, "isolate": topology.Degraded, "kill": topology.Degraded,
		"pause": topology.Degraded, "latency": topology.OK, "destroy": topology.Degraded,
	}, got)
}
