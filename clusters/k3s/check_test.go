package k3s

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

func testTopology(t *testing.T) *topology.Topology {
	t.Helper()
	sc, err := scenarios.Parse("testdata/two-sites.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo
}

// clusterNode is a Ready node of the given size and labels.
func clusterNode(name, cpu, memory string, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(cpu),
				corev1.ResourceMemory: resource.MustParse(memory),
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// labelled is a node carrying its scenario node's labels and extra.
func labelled(t *testing.T, topo *topology.Topology, scenarioNode string, extra map[string]string) map[string]string {
	t.Helper()
	l := nodelabels.For(topo.Node(scenarioNode))
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func fakeCluster(nodes ...*corev1.Node) *Cluster {
	objs := make([]runtime.Object, len(nodes))
	for i, n := range nodes {
		objs[i] = n
	}
	return &Cluster{Client: fake.NewClientset(objs...), Context: "lab"}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A matching cluster: no finding, nothing to label.
func TestCheckMatchingCluster(t *testing.T) {
	topo := testTopology(t)
	c := fakeCluster(
		clusterNode("dc1-cp", "4", "8Gi", labelled(t, topo, "dc1-cp", nil)),
		// a 32Gi machine's kubelet reports a little less
		clusterNode("dc1-w", "8", "32000Mi", labelled(t, topo, "dc1-w", nil)),
		clusterNode("dc2-w", "4", "64Gi", labelled(t, topo, "dc2-w", map[string]string{"team": "payments"})),
	)
	r, err := Check(context.Background(), quiet(), c, topo, nil)
	require.NoError(t, err)
	require.Empty(t, r.Findings)
	require.True(t, r.Plan.Empty())
}

// Every problem is reported at once, errors apart from label drift.
func TestCheckFindings(t *testing.T) {
	topo := testTopology(t)
	notReady := clusterNode("dc1-cp", "4", "8Gi", labelled(t, topo, "dc1-cp", nil))
	notReady.Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "PLEG is not healthy"}
	notReady.Spec.Unschedulable = true
	small := clusterNode("dc1-w", "2", "16Gi", labelled(t, topo, "dc1-w", map[string]string{
		nodelabels.Site:                      "dc2",
		"pool.chaosloop.io/kafka-data-plane": "true",
	}))
	delete(small.Labels, nodelabels.Zone)
	small.Spec.Taints = []corev1.Taint{{Key: "pool.chaosloop.io/kafka-data-plane", Effect: corev1.TaintEffectNoSchedule}}
	stray := clusterNode("old-w", "4", "32Gi", map[string]string{nodelabels.PoolPrefix + "core-handlers": "true", nodelabels.Region: "dc9"})
	c := fakeCluster(notReady, small, stray, clusterNode("other", "1", "1Gi", nil)) // dc2-w is missing
	r, err := Check(context.Background(), quiet(), c, topo, nil)
	require.NoError(t, err)
	var got bytes.Buffer
	for _, f := range r.Findings {
		got.WriteString(f.String() + "\n")
	}
	golden(t, "testdata/findings.golden", got.String())
	require.Equal(t, 4, r.Count(Error), "NotReady, cpu, memory, missing")
	require.Equal(t, 3, r.Count(Drift))
	require.Equal(t, 3, r.Count(Warning), "cordoned, a foreign pool's taint, a stray node")
	require.Len(t, r.Plan.Actions, 1, "only the node with drift; a missing node cannot be labelled")
}

// golden compares got with a file; CHAOSLOOP_UPDATE_GOLDEN=1 rewrites it.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if os.Getenv("CHAOSLOOP_UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
		require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
	}
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}

// Scenario nodes found under other names through the node map.
func TestCheckThroughANodeMap(t *testing.T) {
	topo := testTopology(t)
	m, err := LoadNodeMap("testdata/nodemap-valid.yaml", topo)
	require.NoError(t, err)
	require.Equal(t, NodeMap{"dc1-cp": "server-01", "dc1-w": "server-02"}, m)
	c := fakeCluster(
		clusterNode("server-01", "4", "8Gi", labelled(t, topo, "dc1-cp", nil)),
		clusterNode("server-02", "4", "32Gi", labelled(t, topo, "dc1-w", nil)),
		clusterNode("dc2-w", "4", "32Gi", nil),
		// the scenario's name, but the map sends dc1-cp elsewhere
		clusterNode("dc1-cp", "1", "1Gi", nil),
	)
	r, err := Check(context.Background(), quiet(), c, topo, m)
	require.NoError(t, err)
	require.Zero(t, r.Count(Error))
	require.Len(t, r.Plan.Actions, 1)
	require.Equal(t, "node/dc2-w", r.Plan.Actions[0].Object)
}
