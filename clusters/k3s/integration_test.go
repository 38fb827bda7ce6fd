package k3s

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// TestRealCluster runs Check (validate's), Apply (label's) and Check
// again against the cluster of $CHAOSLOOP_K3S_KUBECONFIG (context
// $CHAOSLOOP_K3S_CONTEXT, else that file's current context, named here by
// the test; unnamed, Connect must refuse it). A scenario of as many nodes
// as the cluster has, one rack each, mapped onto them by a node map, is
// checked (every node Ready, no error, nothing changed), labelled, and
// checked again (no drift, nothing left to change); the adopter's labels
// are untouched. Each node's chaosloop keys are restored afterwards. It
// changes nodes' labels and nothing else: run it on a test cluster.
func TestRealCluster(t *testing.T) {
	file := os.Getenv("CHAOSLOOP_K3S_KUBECONFIG")
	if file == "" {
		t.Skip("CHAOSLOOP_K3S_KUBECONFIG names no kubeconfig")
	}
	ctx := context.Background()
	_, err := Connect(quiet(), Access{Kubeconfig: file})
	require.True(t, IsContextError(err), "an unnamed context is refused: %v", err)
	c, err := Connect(quiet(), Access{Kubeconfig: file, Context: realContext(t, file)})
	require.NoError(t, err)
	before := allLabels(t, c)
	t.Cleanup(func() { restoreLabels(t, c, before) })

	topo, m := scenarioOf(t, before)
	r, err := Check(ctx, quiet(), c, topo, m)
	require.NoError(t, err)
	require.Zero(t, r.Count(Error), "%v", r.Findings)
	require.Equal(t, before, allLabels(t, c), "Check changes nothing")
	require.NoError(t, Apply(ctx, quiet(), c, r.Plan))

	after := allLabels(t, c)
	for name, was := range before {
		for k, v := range was {
			if !nodelabels.Owned(k) {
				require.Equal(t, v, after[name][k], "node %s: the adopter's label %s is kept", name, k)
			}
		}
		for k, v := range nodelabels.For(topo.Node(m.scenarioNode(name))) {
			require.Equal(t, v, after[name][k], "node %s: %s", name, k)
		}
	}
	again, err := Check(ctx, quiet(), c, topo, m)
	require.NoError(t, err)
	require.Zero(t, again.Count(Drift), "%v", again.Findings)
	require.True(t, again.Plan.Empty())
}

func realContext(t *testing.T, file string) string {
	if name := os.Getenv("CHAOSLOOP_K3S_CONTEXT"); name != "" {
		return name
	}
	raw, err := clientcmd.LoadFromFile(file)
	require.NoError(t, err)
	require.NotEmpty(t, raw.CurrentContext, "set CHAOSLOOP_K3S_CONTEXT")
	return raw.CurrentContext
}

func allLabels(t *testing.T, c *Cluster) map[string]map[string]string {
	list, err := c.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, list.Items)
	out := map[string]map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = n.Labels
	}
	return out
}

// scenarioOf is a scenario of as many nodes as the cluster has, each its
// own rack of one site, mapped to the cluster's nodes by a node map (a
// real cluster's node names need not be DNS-1123 labels).
func scenarioOf(t *testing.T, nodes map[string]map[string]string) (*topology.Topology, NodeMap) {
	var b strings.Builder
	b.WriteString("name: k3s-integration\nsites:\n  - name: it\n    racks:\n")
	m := NodeMap{}
	for i, name := range slices.Sorted(maps.Keys(nodes)) {
		fmt.Fprintf(&b, "      - {name: r%d, power: [pdu-%d], switches: [tor-%d], nodes: [{name: n%d, pools: [CORE-HANDLERS]}]}\n", i, i, i, i)
		m[fmt.Sprintf("n%d", i)] = name
	}
	b.WriteString("services:\n  - {name: handlers, kind: stateless, replicas: 1, pool: CORE-HANDLERS}\n")
	sc, err := scenarios.ParseBytes(context.Background(), "k3s-integration.yaml", []byte(b.String()))
	require.NoError(t, err, b.String())
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo, m
}

// scenarioNode is the scenario node a cluster node stands for.
func (m NodeMap) scenarioNode(cluster string) string {
	for s, c := range m {
		if c == cluster {
			return s
		}
	}
	return cluster
}

// restoreLabels puts every chaosloop key of every node back as it was.
func restoreLabels(t *testing.T, c *Cluster, before map[string]map[string]string) {
	now := allLabels(t, c)
	for name, was := range before {
		labels := map[string]*string{}
		for k := range now[name] {
			if nodelabels.Owned(k) {
				labels[k] = nil
			}
		}
		for k, v := range was {
			if nodelabels.Owned(k) {
				labels[k] = &v
			}
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
		require.NoError(t, err)
		_, err = c.Client.CoreV1().Nodes().Patch(context.Background(), name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		require.NoError(t, err)
	}
}
