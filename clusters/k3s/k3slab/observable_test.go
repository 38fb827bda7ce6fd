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
	topo := func(file string) *topology.Topology {
		sc, err := scenarios.Parse("../testdata/" + file)
		require.NoError(t, err)
		tp, err := topology.Build(sc)
		require.NoError(t, err)
		return tp
	}
	require.NoError(t, Observable(topo("attach.yaml"), false))
	require.NoError(t, Observable(topo("deploy.yaml"), true))
	require.EqualError(t, Observable(topo("deploy.yaml"), false),
		"services[0]: service etcd is not attached (services[].attach): chaosloop deploys it from --registry, which was not given")
	require.EqualError(t, Observable(topo("faults.yaml"), true),
		"services[0]: service handlers is not attached (services[].attach): chaosloop deploys only etcd (and Raft), KRaft Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet, not a stateless service")
}
