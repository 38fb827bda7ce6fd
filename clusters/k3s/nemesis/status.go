package nemesis

import (
	"context"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/probe"
	"github.com/chaosloop/chaosloop/lab"
)

// Status is what is in place for a scenario on a cluster: its nodes, the
// agents on them and their rules, and the faults recorded.
type Status struct {
	Scenario string       `json:"scenario"`
	Context  string       `json:"context"`
	Nodes    []NodeStatus `json:"nodes"`
	// Faults are the faults recorded in place, oldest first.
	Faults []lab.Injected `json:"faults"`
	// Services are the scenario's attached services (services[].attach),
	// then those chaosloop deploys, as the cluster runs them.
	Services []k3s.AttachedService `json:"services"`
}

// NodeStatus is one scenario node on the cluster.
type NodeStatus struct {
	Node        string `json:"node"`
	ClusterNode string `json:"clusterNode"`
	// Exists is false when the cluster has no such node.
	Exists bool `json:"exists"`
	Ready  bool `json:"ready"`
	// NotReady says why it is not Ready.
	NotReady string `json:"notReady,omitempty"`
	// Agent: an agent of the scenario runs on the node.
	Agent bool `json:"agent"`
	// Rules are the rules chaosloop wants on the node, each with whether
	// its agent last reported it in place.
	Rules []RuleStatus `json:"rules"`
	// AgentError is the agent's last reconcile error.
	AgentError string `json:"agentError,omitempty"`
	// Reported is when the agent last reported (zero: never).
	Reported time.Time `json:"reported,omitzero"`
}

// RuleStatus is one desired rule of a node.
type RuleStatus struct {
	ID      string     `json:"id"`
	Kind    string     `json:"kind"`
	Expires *time.Time `json:"expires,omitempty"`
	// Applied: the agent reports it in place; Expired: the agent lifted it
	// at its expiry (it stays desired until recovered).
	Applied bool `json:"applied"`
	Expired bool `json:"expired,omitempty"`
}

// Healthy reports whether every scenario node exists and is Ready, and
// every attached service has its members' pods, each Ready, and takes
// writes with every member healthy where its engine was probed.
func (s *Status) Healthy() bool {
	for _, n := range s.Nodes {
		if !n.Exists || !n.Ready {
			return false
		}
	}
	for _, sv := range s.Services {
		if !sv.Healthy() {
			return false
		}
	}
	return true
}

// Status reads what is in place for the scenario; it changes nothing.
func (n *Nemesis) Status(ctx context.Context) (*Status, error) {
	faults, err := n.ActiveFaults(ctx)
	if err != nil {
		return nil, err
	}
	running, err := n.agents().RunningAgents(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Scenario: n.Topology.Name, Context: n.Cluster.Context, Faults: faults, Nodes: []NodeStatus{}}
	if st.Faults == nil {
		st.Faults = []lab.Injected{}
	}
	for _, sn := range n.Topology.Nodes {
		cn := n.NodeMap.ClusterNode(sn.Name)
		ns := NodeStatus{Node: sn.Name, ClusterNode: cn, Agent: running[cn], Rules: []RuleStatus{}}
		node, err := n.Cluster.Client.CoreV1().Nodes().Get(ctx, cn, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			ns.NotReady = "no such node in the cluster"
		case err != nil:
			return nil, err
		default:
			ns.Exists = true
			ns.Ready, ns.NotReady = k3s.IsReady(node)
		}
		rules, _, err := n.agents().Rules(ctx, cn)
		if err != nil {
			return nil, err
		}
		applied, err := n.agents().Applied(ctx, cn)
		if err != nil {
			return nil, err
		}
		ns.AgentError, ns.Reported = applied.Error, applied.Time
		for _, r := range rules {
			ns.Rules = append(ns.Rules, RuleStatus{ID: r.ID, Kind: string(r.Kind), Expires: r.Expires,
				Applied: slices.Contains(applied.Applied, r.ID), Expired: slices.Contains(applied.Expired, r.ID)})
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if st.Services, err = k3s.Attached(ctx, n.Cluster, n.Topology, n.NodeMap); err != nil {
		return nil, err
	}
	probe.New(n.Cluster, n.Log).ProbeAll(ctx, n.Topology, st.Services)
	for _, sv := range n.Topology.Services {
		if sv.Spec.Attach != nil || deploy.Deployable(sv) != nil {
			continue
		}
		as, err := deploy.Observe(ctx, n.Cluster, n.Topology, n.NodeMap, sv, n.Log)
		if err != nil {
			return nil, err
		}
		st.Services = append(st.Services, as)
	}
	return st, nil
}
