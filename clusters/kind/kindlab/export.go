package kindlab

import (
	"fmt"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
)

// PlainConfigNote says what the kind backend does beyond PlainConfig, for
// the head of an exported configuration: a reader comparing the two
// clusters must know where they differ.
const PlainConfigNote = `kind cluster configuration of a chaosloop scenario, as chaosloop's kind
backend lays the cluster out: one node per scenario node, named after it,
the K3S-CONTROL-PLANE nodes as control planes, each node labelled with
topology.kubernetes.io/region (its site) and zone (SITE-RACK) and
chaosloop's site, rack, feed, switch and pool labels.

What chaosloop's kind backend does beyond this file (none of which a plain
kind configuration can express):
- every node's network namespace is attached to the scenario's lab
  network (switches, site routers, WAN links with their latencies): the
  kubelets, API servers and etcd run on lab addresses, and chaosloop's
  faults (power-off, isolate, latency) act on that network;
- kind's CNI (kindnet) is replaced by a bridge CNI per node whose pod /24
  is routed over the lab; this file keeps kindnet so that the cluster
  works on its own;
- the control planes after the first join as kind workers behind a
  per-node load balancer on 127.0.0.1:6444 (kind's external load
  balancer image is not built there); plain kind runs its own;
- chaosloop's own node image (cgroupfs kubelet), member directories
  mounted from the host, and shared control-plane keys.`

// PlainConfig is the plan's cluster as a plain kind configuration: the
// same nodes in the same order, roles, names and labels as the kind
// backend gives them, and its pod and Service ranges, without what needs
// chaosloop (see PlainConfigNote). Node names are set through kubeadm
// patches, as the backend does, so that selectors by node name (an
// exported Chaos Mesh workflow's) match.
func (p *Plan) PlainConfig() *v1alpha4.Cluster {
	c := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     p.Cluster,
		Networking: v1alpha4.Networking{
			IPFamily:      v1alpha4.IPv4Family,
			PodSubnet:     cluster.PodSubnet.String(),
			ServiceSubnet: cluster.ServiceSubnet.String(),
		},
	}
	for i, n := range p.Nodes {
		role := v1alpha4.WorkerRole
		if n.ControlPlane {
			role = v1alpha4.ControlPlaneRole
		}
		name := fmt.Sprintf("nodeRegistration:\n  name: %q\n", n.Name)
		patches := []string{"kind: JoinConfiguration\n" + name}
		if i == 0 {
			// kind runs kubeadm init on its first control plane
			patches = append([]string{"kind: InitConfiguration\n" + name}, patches...)
		}
		c.Nodes = append(c.Nodes, v1alpha4.Node{Role: role, Labels: n.Labels, KubeadmConfigPatches: patches})
	}
	return c
}
