// Package guard holds a real cluster's stop conditions (as AWS FIS has):
// while chaosloop's faults are in place it watches the cluster, and says
// stop when something outside the plan goes wrong — a node no fault
// concerns turns NotReady (or goes away), or the API server stays
// unreachable beyond a budget when no fault takes the control plane's
// quorum. The caller then recovers every fault and reports why.
//
// What the faults may do is computed from the scenario's topology, not
// guessed from the cluster: a node may turn NotReady when a fault powers
// it off, or cuts it off the side of the network that holds most of the
// control plane (its kubelet can no longer reach an API server that has
// quorum); the API may go when the faults leave no side with most of the
// control plane.
package guard

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Defaults of a Guard's settings.
const (
	DefaultInterval  = 2 * time.Second
	DefaultAPIBudget = time.Minute
	// requestTimeout bounds one look at the nodes: a request that takes
	// longer counts as the API not answering.
	requestTimeout = 10 * time.Second
)

// controlPlaneLabels mark a node that runs an API server (kubeadm and
// kind set the first; K3S sets both; older clusters only the second).
var controlPlaneLabels = []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}

// Expectation is what the faults in place may do to the cluster.
type Expectation struct {
	// MayBeNotReady are the cluster nodes the faults may take NotReady,
	// each with the fault that may.
	MayBeNotReady map[string]string
	// APIMayBeLost, when not empty, is why the API server may not answer:
	// the faults leave no side of the network with most of the control
	// plane's nodes.
	APIMayBeLost string
}

// Expect computes what faults may do on topo's cluster (m maps its nodes;
// controlPlane are the cluster's control-plane nodes). A cluster node the
// scenario does not name is in no fault: it reaches every side, so a
// control-plane node among them counts on every side. Without any
// control-plane node known (a managed control plane) the side that keeps
// the API cannot be told: every node a fault cuts off any peer may turn
// NotReady.
func Expect(topo *topology.Topology, m k3s.NodeMap, controlPlane []string, active []lab.Injected) (Expectation, error) {
	e := Expectation{MayBeNotReady: map[string]string{}}
	st := topology.NewState(topo)
	var cut []string // faults that change reachability, for messages
	for _, a := range active {
		tg, err := scenarios.ParseTarget(a.Target)
		if err != nil {
			return e, fmt.Errorf("guard: fault %s %s: %w", a.Action, a.Target, err)
		}
		if err := st.Apply(topology.Fault{Action: a.Action, Target: tg}); err != nil {
			return e, fmt.Errorf("guard: fault %s %s: %w", a.Action, a.Target, err)
		}
		if a.Action == scenarios.ActionLatency && (a.Loss > 0 || a.Delay >= time.Second) {
			// a lossy or very slow link can cost heartbeats on both sides
			for _, n := range latencyNodes(topo, tg) {
				e.MayBeNotReady[m.ClusterNode(n)] = a.Action + " " + a.Target
			}
		}
		if a.Action != scenarios.ActionLatency {
			cut = append(cut, a.Action+" "+a.Target)
		}
	}
	why := strings.Join(cut, ", ")
	scenarioNode := map[string]*topology.Node{}
	for _, n := range topo.Nodes {
		scenarioNode[m.ClusterNode(n.Name)] = n
	}
	// control-plane nodes per network component; outsiders count everywhere
	perComp, outside := map[int32]int{}, 0
	for _, cp := range controlPlane {
		n, ok := scenarioNode[cp]
		switch {
		case !ok:
			outside++
		case st.Up(n):
			perComp[st.Component(n)]++
		}
	}
	quorum, found := int32(0), false
	for c, k := range perComp {
		if 2*(k+outside) > len(controlPlane) {
			quorum, found = c, true
		}
	}
	if !found && outside*2 > len(controlPlane) {
		found = true // the outsiders alone keep it: every side reaches them
		quorum = -1
	}
	before := topology.NewState(topo)
	for _, n := range topo.Nodes {
		cn := m.ClusterNode(n.Name)
		switch {
		case !st.Up(n):
			e.MayBeNotReady[cn] = why
		case len(controlPlane) == 0:
			if lostPeer(topo, before, st, n) {
				e.MayBeNotReady[cn] = why
			}
		case !found:
			e.MayBeNotReady[cn] = why
		case quorum >= 0 && st.Component(n) != quorum && outside == 0:
			e.MayBeNotReady[cn] = why
		}
	}
	if len(controlPlane) > 0 && !found {
		e.APIMayBeLost = fmt.Sprintf("no side of the network keeps most of the %d control-plane node(s) under %s", len(controlPlane), why)
	}
	return e, nil
}

// lostPeer reports whether an up node is cut off a node it reached before
// the faults (one powered off cuts nothing).
func lostPeer(topo *topology.Topology, before, st *topology.State, n *topology.Node) bool {
	for _, o := range topo.Nodes {
		if o != n && before.Component(o) == before.Component(n) && st.Up(o) && st.Component(o) != st.Component(n) {
			return true
		}
	}
	return false
}

// latencyNodes are both sides of a latency fault, scenario names.
func latencyNodes(topo *topology.Topology, tg scenarios.Target) []string {
	var out []string
	for _, n := range topo.Nodes {
		if tg.Kind == scenarios.TargetNode || n.Site().Name == tg.A || n.Site().Name == tg.B {
			out = append(out, n.Name)
		}
	}
	return out
}

// Stop is a stop condition met: what went wrong outside the plan.
type Stop struct {
	At time.Time `json:"at"`
	// Reason says it in a sentence.
	Reason string `json:"reason"`
	// Nodes are the cluster nodes NotReady (or gone) that no fault
	// concerns; empty for the API server's.
	Nodes []string `json:"nodes,omitempty"`
	// APIDown is how long the API server had not answered, for the API's.
	APIDown time.Duration `json:"apiDown,omitempty"`
}

func (s *Stop) Error() string { return "stop condition: " + s.Reason }

// Guard watches one cluster.
type Guard struct {
	Cluster  *k3s.Cluster
	Topology *topology.Topology
	NodeMap  k3s.NodeMap
	Log      *slog.Logger
	// Faults are the faults in place now (and those whose nodes are still
	// coming back): asked at each look.
	Faults func() []lab.Injected
	// Interval between looks, DefaultInterval when 0.
	Interval time.Duration
	// APIBudget is how long the API server may not answer, when no fault
	// takes the control plane's quorum; DefaultAPIBudget when 0.
	APIBudget time.Duration
	// Looked, when set, is told of every look that did not stop (for
	// progress, and for tests that wait for a look, not a timer).
	Looked func(Look)
}

// Look is what one look saw.
type Look struct {
	At time.Time
	// NotReady are the cluster nodes not Ready (or gone), with why; empty
	// while the API server does not answer.
	NotReady map[string]string
	// APIDown is how long the API server has not answered, 0 when it did.
	APIDown time.Duration
	// Nodes is how many nodes the cluster has; 0 while the API server
	// does not answer.
	Nodes int
}

// Watch looks at the cluster every Interval until ctx ends (nil) or a
// stop condition is met (a *Stop). A node already NotReady at the first
// look is not the faults' doing: it is logged, and judged again only
// once it has been Ready.
func (g *Guard) Watch(ctx context.Context) error {
	interval, budget := g.Interval, g.APIBudget
	if interval <= 0 {
		interval = DefaultInterval
	}
	if budget <= 0 {
		budget = DefaultAPIBudget
	}
	w := watcher{g: g, lastOK: time.Now(), budget: budget}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		look, stop := w.look(ctx)
		if stop != nil {
			g.Log.Warn("guard: stop condition", "reason", stop.Reason)
			return stop
		}
		if g.Looked != nil && ctx.Err() == nil {
			g.Looked(look)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// watcher is one Watch's memory between looks.
type watcher struct {
	g      *Guard
	budget time.Duration
	lastOK time.Time
	// known are the cluster's nodes at the first look; excused, those
	// NotReady then (until they have been Ready).
	known, excused map[string]bool
	// cp are the control-plane nodes at the last look that answered.
	cp []string
}

// look is one look at the nodes; it returns the stop condition met, if any.
func (w *watcher) look(ctx context.Context) (Look, *Stop) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	list, err := w.g.Cluster.Client.CoreV1().Nodes().List(rctx, metav1.ListOptions{})
	cancel()
	now := time.Now()
	look := Look{At: now, NotReady: map[string]string{}}
	if ctx.Err() != nil {
		return look, nil
	}
	faults := w.g.Faults()
	if err != nil {
		down := now.Sub(w.lastOK)
		look.APIDown = down
		w.g.Log.Debug("guard: API server not answering", "for", down.Round(time.Millisecond), "err", err)
		if down <= w.budget {
			return look, nil
		}
		e, xerr := Expect(w.g.Topology, w.g.NodeMap, w.controlPlane(), faults)
		if xerr == nil && e.APIMayBeLost != "" {
			return look, nil
		}
		return look, &Stop{At: now, APIDown: down, Reason: fmt.Sprintf(
			"the API server of context %s has not answered for %s (budget %s), and no fault in place takes the control plane's quorum: %v",
			w.g.Cluster.Context, down.Round(time.Second), w.budget, err)}
	}
	w.lastOK = now
	look.Nodes = len(list.Items)
	nodes := map[string]*corev1.Node{}
	var cp []string
	for i := range list.Items {
		n := &list.Items[i]
		nodes[n.Name] = n
		if isControlPlane(n) {
			cp = append(cp, n.Name)
		}
	}
	slices.Sort(cp)
	w.cp = cp
	first := w.known == nil
	if first {
		w.known, w.excused = map[string]bool{}, map[string]bool{}
		for name := range nodes {
			w.known[name] = true
		}
	}
	e, err := Expect(w.g.Topology, w.g.NodeMap, cp, faults)
	if err != nil {
		return look, &Stop{At: now, Reason: err.Error()}
	}
	var bad, why []string
	for _, name := range slices.Sorted(maps.Keys(w.known)) {
		n, ok := nodes[name]
		ready, reason := false, "deleted from the cluster"
		if ok {
			ready, reason = k3s.IsReady(n)
		}
		if !ready {
			look.NotReady[name] = reason
		}
		switch {
		case ready:
			delete(w.excused, name)
		case first:
			w.excused[name] = true
			w.g.Log.Warn("guard: node NotReady before the faults; not judged until it has been Ready", "node", name, "why", reason)
		case w.excused[name], e.MayBeNotReady[name] != "":
		default:
			bad = append(bad, name)
			why = append(why, fmt.Sprintf("node/%s (%s)", name, reason))
		}
	}
	if len(bad) == 0 {
		return look, nil
	}
	return look, &Stop{At: now, Nodes: bad, Reason: fmt.Sprintf("%s NotReady, and no fault in place concerns %s",
		strings.Join(why, ", "), plural(len(bad), "it", "them"))}
}

// controlPlane is the control plane as last seen: while the API server
// does not answer, the nodes cannot be listed.
func (w *watcher) controlPlane() []string { return w.cp }

func isControlPlane(n *corev1.Node) bool {
	for _, l := range controlPlaneLabels {
		if _, ok := n.Labels[l]; ok {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
