package k3slab

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Which scenarios a run on a cluster takes: attached services it can
// probe, and etcd it deploys when a registry was named.
func TestObservable(t *testing.T) {
	topo := func(file string) *topology.Topology { return testTopo(t, file) }
	require.NoError(t, Observable(topo("attach.yaml"), false, false))
	require.NoError(t, Observable(topo("deploy.yaml"), true, false))
	require.EqualError(t, Observable(topo("deploy.yaml"), false, false),
		"services[0]: service etcd is not attached (services[].attach): chaosloop deploys it from --registry, which was not given")
	require.EqualError(t, Observable(topo("faults.yaml"), true, false),
		"services[0]: service handlers is not attached (services[].attach): chaosloop runs a stateless service's workers only when it drives the load, which it does when it deploys every service (--registry given, none attached)")
	require.NoError(t, Observable(topo("faults.yaml"), true, true), "the handlers are the run's workers")
}

// A run drives the load only on services chaosloop deployed, all of them.
func TestDrives(t *testing.T) {
	topo := func(file string) *topology.Topology { return testTopo(t, file) }
	require.Empty(t, Drives(topo("deploy.yaml"), true))
	require.Empty(t, Drives(topo("faults.yaml"), true))
	require.Equal(t, Observing+" (--registry not given: nothing is deployed)", Drives(topo("deploy.yaml"), false))
	require.Contains(t, Drives(topo("attach.yaml"), true), "is the adopter's own, attached")
}

// testTopo is the placed model of ../testdata/FILE.
func testTopo(t *testing.T, file string) *topology.Topology {
	t.Helper()
	sc, err := scenarios.Parse("../testdata/" + file)
	require.NoError(t, err)
	tp, err := topology.Build(sc)
	require.NoError(t, err)
	return tp
}

// A Kafka in ZooKeeper mode is deployed after its ensemble, whatever
// the scenario's order; the others keep theirs.
func TestDeployOrder(t *testing.T) {
	var names []string
	for _, sv := range deployOrder(testTopo(t, "deploy-kafka-zookeeper.yaml").Services) {
		names = append(names, sv.Name)
	}
	require.Equal(t, []string{"etcd", "zk", "kafka"}, names)
}
