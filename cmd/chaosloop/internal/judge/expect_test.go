package judge

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

func testScenario() *scenarios.Scenario {
	return (&scenarios.Scenario{Name: "s", Services: []scenarios.Service{{Name: "db"}}}).WithDefaults()
}

func TestApplyExpect(t *testing.T) {
	sc := testScenario()
	changed, err := applyExpect(sc, []setting{
		{key: "quorum", value: "any", from: "a"},
		{key: "acknowledgedloss", value: "3", from: "b"}, // keys match case-insensitively
		{key: "expect.throughput", value: " 0.9 ", from: "c"},
		{key: "recovery", value: "1m", from: "d"},
		{key: "throughput", value: "0.95", from: "e"}, // a later setting wins
	})
	require.NoError(t, err)
	e := sc.Expect
	require.Equal(t, "any", e.Quorum)
	require.Equal(t, 3, *e.AcknowledgedLoss)
	require.InDelta(t, 0.95, *e.Throughput, 1e-9)
	require.Equal(t, time.Minute, e.Recovery.D())
	require.Equal(t, []string{"quorum held → any", "acknowledgedLoss 0 → 3", "throughput 0.8 → 0.95", "recovery 30s → 1m0s"}, changed)
}

func TestApplyExpectReportsEveryProblem(t *testing.T) {
	sc := testScenario()
	before := *sc.Expect
	_, err := applyExpect(sc, []setting{
		{key: "throughput", value: "NaN", from: "--expect throughput=NaN"},
		{key: "recovery", value: "-1s", from: "--expect recovery=-1s"},
		{key: "failover", value: "0s", from: "--expect failover=0s"},
		{key: "failover.", value: "20s", from: "--expect failover.=20s"},
		{key: "failover.db", value: "later", from: "--expect failover.db=later"},
	})
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 5, err.Error())
	require.Contains(t, lines[0], "throughput wants a fraction")
	require.Contains(t, lines[1], "recovery wants a duration")
	require.Contains(t, lines[2], "--expect failover=0s: failover wants a duration")
	require.Contains(t, lines[3], "needs a service name")
	require.Contains(t, lines[4], "failover wants a duration")
	require.Equal(t, before.Quorum, sc.Expect.Quorum)
}

// Every field of a scenario's expect: section has a row in the table, so
// judge can override whatever a scenario can say.
func TestTableCoversScenarioExpect(t *testing.T) {
	var names []string
	for _, k := range expectKeys() {
		names = append(names, k.name)
	}
	typ := reflect.TypeFor[scenarios.Expect]()
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		require.Contains(t, names, tag, "scenarios.Expect.%s has no --expect row", typ.Field(i).Name)
	}
}
