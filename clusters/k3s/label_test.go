package k3s

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/nodelabels"
)

// label's diff, applied: chaosloop's keys added, changed and (a dropped
// pool) removed, the adopter's labels untouched, and a second pass finds
// nothing to do.
func TestLabelIsIdempotentAndLeavesOthersAlone(t *testing.T) {
	topo := testTopology(t)
	ctx := context.Background()
	adopters := map[string]string{"kubernetes.io/hostname": "dc1-w", "team": "payments", "chaosloop.io/owner": "ops"}
	stale := labelled(t, topo, "dc1-w", map[string]string{"pool.chaosloop.io/kafka-data-plane": "true", nodelabels.Region: "eu-west"})
	for k, v := range adopters {
		stale[k] = v
	}
	c := fakeCluster(
		clusterNode("dc1-cp", "4", "8Gi", map[string]string{"node-role.kubernetes.io/control-plane": ""}),
		clusterNode("dc1-w", "4", "32Gi", stale),
		clusterNode("dc2-w", "4", "32Gi", labelled(t, topo, "dc2-w", nil)),
	)
	r, err := Check(ctx, quiet(), c, topo, nil)
	require.NoError(t, err)
	var text bytes.Buffer
	r.Plan.WriteText(&text)
	golden(t, "testdata/label-plan.golden", text.String())

	before := nodeLabels(t, c, "dc1-cp")
	require.NoError(t, Apply(ctx, quiet(), c, r.Plan))
	for _, name := range []string{"dc1-cp", "dc1-w", "dc2-w"} {
		got := nodeLabels(t, c, name)
		for k, v := range nodelabels.For(topo.Node(name)) {
			require.Equal(t, v, got[k], "%s %s", name, k)
		}
	}
	require.Equal(t, "", nodeLabels(t, c, "dc1-cp")["node-role.kubernetes.io/control-plane"])
	require.Len(t, nodeLabels(t, c, "dc1-cp"), len(before)+len(nodelabels.For(topo.Node("dc1-cp"))))
	w := nodeLabels(t, c, "dc1-w")
	for k, v := range adopters {
		require.Equal(t, v, w[k], "the adopter's label %s is kept", k)
	}
	require.NotContains(t, w, "pool.chaosloop.io/kafka-data-plane", "a pool the scenario dropped is removed")

	again, err := Check(ctx, quiet(), c, topo, nil)
	require.NoError(t, err)
	require.True(t, again.Plan.Empty(), "a second label changes nothing")
	require.Empty(t, again.Findings)
	text.Reset()
	again.Plan.WriteText(&text)
	require.Equal(t, "context lab: no label to change\n", text.String())
}

func nodeLabels(t *testing.T, c *Cluster, name string) map[string]string {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return n.Labels
}

// Apply takes only node labels: a plan it does not know is refused
// before anything is sent.
func TestApplyRefusesOtherActions(t *testing.T) {
	c := fakeCluster()
	err := Apply(context.Background(), quiet(), c, &Plan{Actions: []Action{{Verb: "delete", Object: "node/x"}}})
	require.ErrorContains(t, err, "cannot apply delete node/x")
}
