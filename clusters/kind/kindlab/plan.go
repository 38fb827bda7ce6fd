// Package kindlab stands a scenario up as a kind cluster whose nodes live
// on the scenario's network: one kind node per scenario node, named after
// it, each node container's network namespace adopted by netlab as that
// node's lab host (switches, site routers, WAN links, faults), the kubelet's
// node IP and the API servers' advertise addresses on the lab, the pods'
// /24s routed by the nodes and the site routers. Only host-to-cluster
// management (docker exec, the kubeconfig on the host) uses docker's
// network.
package kindlab

import (
	"fmt"
	"net/netip"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// ControlPlanePool is the pool whose nodes are the control-plane nodes
// (the seed's K3S HA control plane); without any, the first node is.
const ControlPlanePool = "K3S-CONTROL-PLANE"

// NSPrefix is the prefix of a kind lab's netlab namespaces, so that they
// never collide with a local lab's (cl-) nor are swept by its down --all.
const NSPrefix = "ck-"

// ClusterPrefix prefixes the scenario's name in the kind cluster's name.
const ClusterPrefix = "chaosloop-"

// LBPort is where every node's load balancer over the API servers listens
// (on 127.0.0.1), as a K3S agent's does.
const LBPort = 6444

// maxNodes: one pod /24 per node in cluster.PodSubnet (a /20).
const maxNodes = 16

// Plan is a scenario's cluster: its nodes in kind's order (the node kind
// runs kubeadm init on first, then the other control-plane nodes, then the
// rest, each in scenario order).
type Plan struct {
	Cluster string
	Nodes   []NodePlan
	// Lab is the scenario's network, every host adopted.
	Lab *netlab.Plan
	// Options are the netlab options the lab is built with.
	Options netlab.Options
}

// NodePlan is one scenario node as a kind node.
type NodePlan struct {
	Name         string // the scenario's node, the Kubernetes node's name
	Container    string // kind's name for its container
	ControlPlane bool
	Site, Rack   string
	Addr         netip.Addr   // its lab address: kubelet's node IP
	PodCIDR      netip.Prefix // its pods' /24
	Labels       map[string]string
}

// NewPlan plans the cluster of a defaulted, validated scenario.
func NewPlan(sc *scenarios.Scenario) (*Plan, error) {
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	if len(topo.Nodes) > maxNodes {
		return nil, fmt.Errorf("kind: %d nodes, at most %d fit the pod range %s (a /24 each)", len(topo.Nodes), maxNodes, cluster.PodSubnet)
	}
	cps := ControlPlaneNodes(topo)
	isCP := map[string]bool{}
	for _, n := range cps {
		isCP[n.Name] = true
	}
	p := &Plan{Cluster: ClusterPrefix + sc.Name}
	// kind names containers (and their host names) CLUSTER-control-plane
	if n := len(p.Cluster + "-control-plane"); n > 63 {
		return nil, fmt.Errorf("kind: scenario name %q is too long for kind's node names (%s-control-plane, %d characters; at most 63)", sc.Name, p.Cluster, n)
	}
	p.Options = netlab.Options{NSPrefix: NSPrefix, Adopt: true, Routed: map[string][]netip.Prefix{}}
	byName := map[string]NodePlan{}
	for _, n := range topo.Nodes {
		np := NodePlan{
			Name: n.Name, ControlPlane: isCP[n.Name], Site: n.Site().Name, Rack: n.Rack.Name,
			PodCIDR: podCIDR(n.Index), Labels: nodelabels.For(n),
		}
		p.Options.Routed[n.Name] = []netip.Prefix{np.PodCIDR}
		byName[n.Name] = np
	}
	if p.Lab, err = netlab.NewPlanWith(sc, p.Options); err != nil {
		return nil, err
	}
	for _, h := range p.Lab.Hosts {
		np := byName[h.Node]
		np.Addr = h.Addr
		byName[h.Node] = np
	}
	// kind's order: the init node first, then the control planes it joins
	for _, n := range cps {
		p.Nodes = append(p.Nodes, byName[n.Name])
	}
	for _, n := range topo.Nodes {
		if !isCP[n.Name] {
			p.Nodes = append(p.Nodes, byName[n.Name])
		}
	}
	names := cluster.Spec{Name: p.Cluster, Nodes: make([]cluster.Node, len(p.Nodes))}.ContainerNames()
	for i := range p.Nodes {
		p.Nodes[i].Container = names[i]
	}
	return p, nil
}

// ControlPlaneNodes are the scenario's control-plane nodes: the
// K3S-CONTROL-PLANE pool's; without that pool, the nodes of the
// scenario's first etcd service (the K3S datastore, which on kind is the
// cluster's own etcd); without either, the first node.
func ControlPlaneNodes(topo *topology.Topology) []*topology.Node {
	if cps := topo.PoolNodes(ControlPlanePool); len(cps) > 0 {
		return cps
	}
	for _, sv := range topo.Services {
		if sv.Kind == scenarios.KindEtcd {
			return sv.Members
		}
	}
	return topo.Nodes[:1]
}

// APIService is the etcd service that is the cluster's own datastore: an
// etcd service whose members are every control-plane node, one each
// (kubeadm's etcd and API server run there); "" when there is none.
func APIService(topo *topology.Topology) string {
	cps := ControlPlaneNodes(topo)
	for _, sv := range topo.Services {
		if sv.Kind != scenarios.KindEtcd || len(sv.Members) != len(cps) {
			continue
		}
		on := map[string]bool{}
		for _, n := range sv.Members {
			on[n.Name] = true
		}
		all := len(on) == len(cps)
		for _, n := range cps {
			all = all && on[n.Name]
		}
		if all {
			return sv.Name
		}
	}
	return ""
}

// podCIDR is the i-th /24 of the pod range.
func podCIDR(i int) netip.Prefix {
	a := cluster.PodSubnet.Addr().As4()
	a[2] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// ControlPlanes are the control-plane nodes, the init node first.
func (p *Plan) ControlPlanes() []NodePlan {
	var out []NodePlan
	for _, n := range p.Nodes {
		if n.ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the plan of a scenario node.
func (p *Plan) Node(name string) (NodePlan, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodePlan{}, false
}
