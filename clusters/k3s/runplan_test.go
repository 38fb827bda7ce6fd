package k3s

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

func faultsTopology(t *testing.T) *topology.Topology {
	data, err := os.ReadFile("testdata/faults.yaml")
	require.NoError(t, err)
	sc, err := scenarios.ParseBytes(context.Background(), "testdata/faults.yaml", data)
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo
}

// The plan of a fault of every action, through a node map, against a
// cluster whose nodes lack their labels.
func TestRunPlan(t *testing.T) {
	topo := faultsTopology(t)
	m, err := LoadNodeMap("testdata/faults-nodemap.yaml", topo)
	require.NoError(t, err)
	inv, err := bmc.Load("testdata/bmc.yaml")
	require.NoError(t, err)
	c := fakeCluster(clusterNode("dc1-cp", "4", "8Gi", nil), clusterNode("dc1-w", "4", "32Gi", nil), clusterNode("server-9", "4", "32Gi", nil))
	p, err := PlanRun(context.Background(), quiet(), c, RunPlanInput{Topology: topo, NodeMap: m, BMC: inv, Seed: 7})
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, p.WriteText(&b))
	golden(t, "testdata/run-plan.golden", b.String())

	require.Equal(t, map[string]string{LabelManagedBy: ManagedBy, LabelScenario: "k3stest"}, p.Labels)
	require.Len(t, p.Faults, 7)
	require.Equal(t, "isolate", p.Faults[0].Action, "schedule order: the isolation at 10s first")
	require.Equal(t, []Step{
		{Mechanism: MechanismAgent, Nodes: []string{"dc1-cp", "dc1-w"}, Peers: []string{"server-9"}, Action: "agent rules on dc1-cp, dc1-w against server-9: drop"},
		{Mechanism: MechanismAgent, Nodes: []string{"server-9"}, Peers: []string{"dc1-cp", "dc1-w"}, Action: "agent rules on server-9 against dc1-cp, dc1-w: drop"},
	}, p.Faults[0].Steps)
}

// A power fault on nodes without a BMC is an error naming them.
func TestRunPlanNoBMC(t *testing.T) {
	topo := faultsTopology(t)
	r := &Report{Context: "lab", Plan: &Plan{Context: "lab"}}
	inv, err := bmc.Load("testdata/bmc-partial.yaml")
	require.NoError(t, err)
	for _, tc := range []struct {
		inv  *bmc.Inventory
		want string
	}{
		{nil, "no BMC for node(s) dc1-cp, dc1-w, dc2-w; no BMC inventory was given (--bmc FILE)"},
		{inv, "no BMC for node(s) dc1-cp, dc1-w; the BMC inventory testdata/bmc-partial.yaml lists none of them"},
	} {
		_, err := NewRunPlan(RunPlanInput{Topology: topo, BMC: tc.inv, Report: r})
		var nb *NoBMCError
		require.ErrorAs(t, err, &nb)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestOwnedNames(t *testing.T) {
	sel, err := OwnedSelector("k3stest")
	require.NoError(t, err)
	require.Equal(t, "app.kubernetes.io/managed-by=chaosloop,chaosloop.io/scenario=k3stest", sel)
	_, err = OwnedLabels("Not_A_Label")
	require.Error(t, err)
	long := AgentConfigMap(strings.Repeat("n", 250))
	require.LessOrEqual(t, len(long), 253)
	require.NotEqual(t, long, AgentConfigMap(strings.Repeat("n", 249)+"m"))
	status := AgentStatusConfigMap(strings.Repeat("n", 253))
	require.LessOrEqual(t, len(status), 253)
	require.Empty(t, validation.IsDNS1123Subdomain(status))
	require.Equal(t, "chaosloop-agent-status-dc1-cp", AgentStatusConfigMap("dc1-cp"))
}
