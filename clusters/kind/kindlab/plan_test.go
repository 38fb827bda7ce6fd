package kindlab

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/chaosloop/chaosloop/scenarios"
)

func testPlan(t *testing.T, file string) *Plan {
	t.Helper()
	sc, err := scenarios.Parse(file)
	require.NoError(t, err)
	p, err := NewPlan(sc)
	require.NoError(t, err)
	return p
}

func TestPlanOfTheTestScenario(t *testing.T) {
	p := testPlan(t, "testdata/two-sites.yaml")
	require.Equal(t, "chaosloop-kindlab", p.Cluster)
	require.Len(t, p.Nodes, 3)
	cp := p.Nodes[0]
	require.Equal(t, "dc1-cp", cp.Name)
	require.True(t, cp.ControlPlane)
	require.Equal(t, "chaosloop-kindlab-control-plane", cp.Container)
	require.Equal(t, []string{"chaosloop-kindlab-worker", "chaosloop-kindlab-worker2"}, []string{p.Nodes[1].Container, p.Nodes[2].Container})
	w2, _ := p.Node("dc2-w")
	require.Equal(t, "198.19.130.0/24", w2.PodCIDR.String())
	require.Equal(t, "198.18.2.10", w2.Addr.String())
	require.Equal(t, map[string]string{
		"topology.kubernetes.io/region": "dc2", "topology.kubernetes.io/zone": "dc2-r1",
		"chaosloop.io/site": "dc2", "chaosloop.io/rack": "r1",
		"feed.chaosloop.io/dc2-pdu": "true", "switch.chaosloop.io/dc2-tor": "true",
		"pool.chaosloop.io/core-handlers": "true",
	}, w2.Labels)
	require.Equal(t, "ck-kindlab.h.dc2-w", p.Lab.Hosts[2].NetNS)
	require.Equal(t, "lab0", p.Lab.Hosts[2].Ports[0].Dev)
}

// The kind configuration: every node on its lab address under its
// scenario name, every kubeconfig through the node's load balancer.
func TestSpec(t *testing.T) {
	p := testPlan(t, "testdata/two-sites.yaml")
	dir := t.TempDir()
	spec, err := p.Spec("chaosloop/node:x", dir, 0)
	require.NoError(t, err)
	c := spec.Config()
	require.Len(t, c.Nodes, 3)
	require.Equal(t, v1alpha4.ControlPlaneRole, c.Nodes[0].Role)
	require.Contains(t, c.KubeadmConfigPatches[1], `controlPlaneEndpoint: "127.0.0.1:6444"`)
	require.Contains(t, c.KubeadmConfigPatches[1], `allocate-node-cidrs: "false"`)
	init := strings.Join(c.Nodes[0].KubeadmConfigPatches, "---\n")
	require.Contains(t, init, "kind: InitConfiguration")
	require.Contains(t, init, `advertiseAddress: "198.18.1.10"`)
	require.Contains(t, init, `name: "dc1-cp"`)
	worker := strings.Join(c.Nodes[2].KubeadmConfigPatches, "---\n")
	require.NotContains(t, worker, "InitConfiguration")
	require.NotContains(t, worker, "controlPlane:")
	require.Contains(t, worker, `node-ip: "198.18.2.10"`)
	require.Contains(t, worker, `apiServerEndpoint: "127.0.0.1:6444"`)
	require.Len(t, c.Nodes[2].ExtraMounts, 3)
	require.Len(t, c.Nodes[0].ExtraMounts, 3+8, "the control plane has the shared keys")
	require.FileExists(t, filepath.Join(dir, "pki", "etcd", "ca.key"))
	lb := p.lbConfig()
	require.Contains(t, lb, "server dc1-cp 198.18.1.10:6443")
	require.Contains(t, cniConfig(p.Nodes[2].PodCIDR), `"subnet": "198.19.130.0/24"`)
}

// Three control-plane nodes: the first is kind's, the others kind workers
// joined as control planes on their own lab addresses.
func TestPlanOfThreeControlPlanes(t *testing.T) {
	p := testPlan(t, "../../../scenarios/quickstart.yaml")
	require.Len(t, p.Nodes, 15)
	var cps []string
	for _, n := range p.ControlPlanes() {
		cps = append(cps, n.Name)
	}
	require.Equal(t, []string{"dc1-cp", "dc2-cp", "dc3-cp"}, cps)
	require.Equal(t, "chaosloop-quickstart-worker", p.Nodes[1].Container)
	join := strings.Join(p.nodePatches(p.Nodes[1]), "---\n")
	require.Contains(t, join, "controlPlane:")
	require.NotContains(t, join, "InitConfiguration")
	lb := p.lbConfig()
	for _, n := range p.ControlPlanes() {
		require.Contains(t, lb, "server "+n.Name+" "+n.Addr.String()+":6443")
	}
}
