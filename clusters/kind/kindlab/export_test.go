package kindlab

import (
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// The plain kind configuration has the backend's nodes, in its order,
// with its roles, names and labels, and reads back strictly as kind's
// v1alpha4 type.
func TestPlainConfig(t *testing.T) {
	p := testPlan(t, "../../../scenarios/kind-quickstart.yaml")
	c := p.PlainConfig()
	require.Equal(t, "kind.x-k8s.io/v1alpha4", c.APIVersion)
	require.Equal(t, p.Cluster, c.Name)
	require.False(t, c.Networking.DisableDefaultCNI, "kindnet stays: a plain cluster needs a CNI")
	require.Len(t, c.Nodes, len(p.Nodes))
	cps := 0
	for i, n := range p.Nodes {
		want := v1alpha4.WorkerRole
		if n.ControlPlane {
			want = v1alpha4.ControlPlaneRole
			cps++
		}
		require.Equal(t, want, c.Nodes[i].Role, n.Name)
		require.Equal(t, n.Labels, c.Nodes[i].Labels)
		require.Contains(t, c.Nodes[i].KubeadmConfigPatches[len(c.Nodes[i].KubeadmConfigPatches)-1],
			"kind: JoinConfiguration\nnodeRegistration:\n  name: \""+n.Name+"\"\n")
	}
	require.Equal(t, 3, cps)
	require.Len(t, c.Nodes, 12)
	require.Contains(t, c.Nodes[0].KubeadmConfigPatches[0], "kind: InitConfiguration")
	require.Len(t, c.Nodes[1].KubeadmConfigPatches, 1, "only the first node runs kubeadm init")

	b, err := yaml.Marshal(c)
	require.NoError(t, err)
	var back v1alpha4.Cluster
	require.NoError(t, yaml.UnmarshalStrict(b, &back))
	require.Equal(t, *c, back)
}
