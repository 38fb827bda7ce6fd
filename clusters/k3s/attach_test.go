package k3s_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// The attached services' pods are found by namespace and selector, in a
// StatefulSet's ordinal order; where they differ from the scenario (a
// member on another node, a pod too many) is said; nothing is written.
func TestAttached(t *testing.T) {
	s := apitest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	k3stest.AdopterPods(t, cs)
	before := apitest.StableSnapshot(t, s.Config)
	c, err := k3s.Connect(enginetest.Log(t), k3s.Access{Kubeconfig: s.Kubeconfig, Context: s.Context})
	require.NoError(t, err)
	sc, err := scenarios.Parse("testdata/attach.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)

	got, err := k3s.Attached(t.Context(), c, topo, nil)
	require.NoError(t, err)
	require.Len(t, got, 2)
	etcd, handlers := got[0], got[1]
	require.Equal(t, []k3s.AttachedMember{{Index: 0, Pod: "etcd-0", Node: "dc1-cp", Want: "dc1-cp", Ready: true}}, etcd.Members)
	require.Empty(t, etcd.Findings)
	require.Equal(t, 1, etcd.Replicas)
	require.True(t, etcd.Healthy())

	require.Equal(t, []k3s.AttachedMember{
		{Index: 0, Pod: "handlers-0", Node: "dc1-w", Want: "dc1-w", Ready: true},
		{Index: 1, Pod: "handlers-1", Node: "dc1-w", Want: "dc2-w", NotReady: "Ready=False, ContainersNotReady", Restarts: 4},
		{Index: 10, Pod: "handlers-10", Node: "dc2-w", Ready: true}, // its ordinal: an extra pod
	}, handlers.Members)
	require.Equal(t, []string{
		"3 pods match, the scenario has 2 members",
		"member 1 (pod handlers-1) runs on node/dc1-w, the scenario places it on node/dc2-w",
	}, handlers.Findings)
	require.Equal(t, 2, handlers.Replicas)
	require.False(t, handlers.Healthy())

	// validate --on k3s's check says the same, as errors
	r, err := k3s.Check(t.Context(), enginetest.Log(t), c, topo, nil)
	require.NoError(t, err)
	var found []string
	for _, f := range r.Findings {
		if f.Check == "attach" {
			found = append(found, f.String())
		}
	}
	require.Equal(t, []string{
		"error: service/handlers: 3 pods match, the scenario has 2 members (analyze's verdicts describe the scenario, not this cluster)",
		"error: service/handlers: member 1 (pod handlers-1) runs on node/dc1-w, the scenario places it on node/dc2-w (analyze's verdicts describe the scenario, not this cluster)",
	}, found)
	require.Empty(t, before.Diff(apitest.StableSnapshot(t, s.Config)), "observing writes nothing")
}
