package k3s

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/topology"
)

// Severity of a finding about the cluster.
type Severity string

const (
	// Error: the cluster cannot run the scenario as written (a node
	// missing, NotReady or too small).
	Error Severity = "error"
	// Drift: a label differs from the scenario's; `chaosloop label`
	// fixes it.
	Drift Severity = "drift"
	// Warning: worth a look, does not stop a run.
	Warning Severity = "warning"
)

// Finding is one problem of one node.
type Finding struct {
	Severity Severity `json:"severity"`
	// Node is the scenario node ("" for a stray cluster node), ClusterNode
	// the cluster node it maps to.
	Node        string `json:"node"`
	ClusterNode string `json:"clusterNode"`
	// Check names what was checked: exists, ready, cpu, memory, label,
	// taint, schedulable, stray, attach.
	Check   string `json:"check"`
	Message string `json:"message"`
	// Service is an attached service's (check attach); Node is then "".
	Service string `json:"service,omitempty"`
}

func (f Finding) String() string {
	if f.Service != "" {
		return fmt.Sprintf("%s: service/%s: %s", f.Severity, f.Service, f.Message)
	}
	name := "node/" + f.ClusterNode
	if f.Node != "" && f.ClusterNode != f.Node {
		name += " (scenario node " + f.Node + ")"
	}
	return fmt.Sprintf("%s: %s: %s", f.Severity, name, f.Message)
}

// Report is the cluster checked against a scenario.
type Report struct {
	Context  string    `json:"context"`
	Nodes    int       `json:"nodes"`
	Findings []Finding `json:"findings"`
	// Plan is what `label` would change (the drift's fix).
	Plan *Plan `json:"plan"`
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// memorySlack: a node's reported memory capacity is what the kernel
// leaves after its own reservations, a few percent under the installed
// memory, so a 32Gi machine passes a 32Gi size at 95%.
const memorySlack = 0.95

// Check reads the cluster's nodes and checks each scenario node's cluster
// node: it exists, is Ready, has the cores and memory the scenario gives
// it, carries its labels and no taint of a pool it lacks. Every problem is
// a finding; the error is only for a cluster that cannot be read.
func Check(ctx context.Context, log *slog.Logger, c *Cluster, topo *topology.Topology, m NodeMap) (*Report, error) {
	nodes, err := listNodes(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	log.Info("k3s: nodes read", "context", c.Context, "cluster", len(nodes), "scenario", len(topo.Nodes))
	r := &Report{Context: c.Context, Nodes: len(topo.Nodes), Findings: []Finding{}, Plan: &Plan{Context: c.Context}}
	for _, n := range topo.Nodes {
		name := m.ClusterNode(n.Name)
		find := func(s Severity, check, format string, args ...any) {
			r.Findings = append(r.Findings, Finding{Severity: s, Node: n.Name, ClusterNode: name, Check: check, Message: fmt.Sprintf(format, args...)})
		}
		cn, ok := nodes[name]
		if !ok {
			find(Error, "exists", "no such node in the cluster (name it in --node-map if it has another name)")
			continue
		}
		checkNode(n, cn, find)
		if a := labelAction(n, cn); a != nil {
			for _, ch := range a.Changes {
				find(Drift, "label", "%s", ch.describe())
			}
			r.Plan.Actions = append(r.Plan.Actions, *a)
		}
		delete(nodes, name)
	}
	r.Findings = append(r.Findings, strays(nodes)...)
	attached, err := Attached(ctx, c, topo, m)
	if err != nil {
		return nil, err
	}
	for _, sv := range attached {
		for _, f := range sv.Findings {
			r.Findings = append(r.Findings, Finding{Severity: Error, Service: sv.Service, Check: "attach",
				Message: f + " (analyze's verdicts describe the scenario, not this cluster)"})
		}
	}
	return r, nil
}

// strays are the cluster nodes no scenario node maps to that still carry
// chaosloop's site, rack, feed, switch or pool labels (from an older
// scenario, or a node renamed): label leaves them as they are, and
// anything that selects nodes by those labels would find them.
func strays(rest map[string]*corev1.Node) []Finding {
	var out []Finding
	for _, name := range slices.Sorted(maps.Keys(rest)) {
		var keys []string
		for k := range rest[name].Labels {
			if nodelabels.Owned(k) && k != nodelabels.Region && k != nodelabels.Zone {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			slices.Sort(keys)
			out = append(out, Finding{Severity: Warning, ClusterNode: name, Check: "stray",
				Message: fmt.Sprintf("no scenario node's, but carries chaosloop's labels %s: label leaves it as it is", strings.Join(keys, ", "))})
		}
	}
	return out
}

// finder records a finding about the node being checked.
type finder func(s Severity, check, format string, args ...any)

func listNodes(ctx context.Context, client kubernetes.Interface) (map[string]*corev1.Node, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's nodes: %w", err)
	}
	out := make(map[string]*corev1.Node, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// checkNode checks one node's readiness, size and taints (labels are the
// label plan's).
func checkNode(n *topology.Node, cn *corev1.Node, find finder) {
	if ready, why := IsReady(cn); !ready {
		find(Error, "ready", "not Ready (%s)", why)
	}
	if cn.Spec.Unschedulable {
		find(Warning, "schedulable", "cordoned (unschedulable): no new pod is placed on it")
	}
	if n.HasCPU {
		want := resource.NewMilliQuantity(int64(n.CPU*1000), resource.DecimalSI)
		if got := cn.Status.Capacity[corev1.ResourceCPU]; got.Cmp(*want) < 0 {
			find(Error, "cpu", "%s cores, the scenario gives it %s", got.String(), want.String())
		}
	}
	if n.HasMemory {
		got := cn.Status.Capacity[corev1.ResourceMemory]
		if float64(got.Value()) < memorySlack*float64(n.Memory) {
			find(Error, "memory", "%s of memory, the scenario gives it %s", got.String(), size(n.Memory))
		}
	}
	for _, t := range cn.Spec.Taints {
		pool, isPool := strings.CutPrefix(t.Key, nodelabels.PoolPrefix)
		if isPool && t.Effect != corev1.TaintEffectPreferNoSchedule && !slices.ContainsFunc(n.Pools, func(p string) bool { return strings.EqualFold(p, pool) }) {
			find(Warning, "taint", "tainted %s:%s, pool %s's taint, but the scenario does not give it that pool: its own pools' workloads would be kept off it", t.Key, t.Effect, strings.ToUpper(pool))
		}
	}
}

// size writes bytes as the scenario most likely did: 32G, or else 32Gi.
func size(b int64) string {
	format := resource.BinarySI
	if b%1_000_000 == 0 {
		format = resource.DecimalSI
	}
	return resource.NewQuantity(b, format).String()
}

// IsReady reads the node's Ready condition; a node without one (never
// reported) is not Ready.
func IsReady(cn *corev1.Node) (bool, string) {
	for _, c := range cn.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			return true, ""
		}
		why := "Ready=" + string(c.Status)
		if c.Reason != "" {
			why += ", " + c.Reason
		}
		if c.Message != "" {
			why += ": " + c.Message
		}
		return false, why
	}
	return false, "no Ready condition reported"
}

// Failed reports whether the cluster cannot run the scenario as it is: a
// node with an error, or labels that differ (a nil report, no cluster
// checked, has not failed).
func (r *Report) Failed() bool {
	return r != nil && (r.Count(Error) > 0 || r.Count(Drift) > 0)
}
