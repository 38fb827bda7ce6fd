package k3s

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// RunPlan is everything a run of the scenario on the cluster would do:
// the node labels it needs, the objects it would create, and each fault
// with the concrete mechanism on each cluster node it touches. It is
// computed from what the cluster's nodes are, without changing anything.
type RunPlan struct {
	Scenario string `json:"scenario"`
	Context  string `json:"context"`
	Seed     uint64 `json:"seed"`
	// Namespace and Labels are where chaosloop's objects go and what they
	// carry (what `down` selects by).
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	// NodeLabels is what `label` would change; run never changes a node's
	// labels itself.
	NodeLabels *Plan          `json:"nodeLabels"`
	Objects    []Object       `json:"objects"`
	Faults     []PlannedFault `json:"faults"`
	// Findings are the cluster's problems Check found (a node missing,
	// NotReady, too small); label drift is in NodeLabels.
	Findings []Finding `json:"findings"`
}

// Object is one object chaosloop would create.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Purpose   string `json:"purpose"`
}

// PlannedFault is one fault of the schedule and what carries it out.
type PlannedFault struct {
	// Index is the fault's place in the scenario's faults list.
	Index  int    `json:"index"`
	At     string `json:"at"`
	For    string `json:"for,omitempty"`
	Action string `json:"action"`
	// Target is concrete: a service target names its member (drawn with
	// the seed, as run draws it).
	Target string `json:"target"`
	Steps  []Step `json:"steps"`
}

// Mechanisms a step uses.
const (
	MechanismBMC   = "bmc"
	MechanismAgent = "agent"
	MechanismPod   = "pod"
	// MechanismSignal is a SIGKILL sent by the node's agent to a deployed
	// member's processes (a hard kill, as in the local lab).
	MechanismSignal = "signal"
)

// Step is what is done on some cluster nodes for a fault.
type Step struct {
	Mechanism string `json:"mechanism"`
	// Nodes are cluster nodes acted on; Peers, for agent rules, the
	// cluster nodes their traffic to and from is dropped or delayed.
	Nodes []string `json:"nodes"`
	Peers []string `json:"peers,omitempty"`
	// BMC is the controller of a power step (protocol and address; never
	// the credentials).
	BMC *BMCRef `json:"bmc,omitempty"`
	// Member is a kill or pause's service member (service/NAME/INDEX).
	Member string `json:"member,omitempty"`
	// Action is the step in words.
	Action string `json:"action"`
}

// BMCRef names a node's BMC.
type BMCRef struct {
	Protocol bmc.Protocol `json:"protocol"`
	Address  string       `json:"address"`
}

// NoBMCError is a power fault on nodes the BMC inventory does not list: it
// cannot run without a way to cut their power.
type NoBMCError struct {
	// Nodes are the scenario nodes without a BMC, sorted.
	Nodes []string
	// Inventory is the file given, "" when none was.
	Inventory string
}

func (e *NoBMCError) Error() string {
	where := "no BMC inventory was given (--bmc FILE)"
	if e.Inventory != "" {
		where = "the BMC inventory " + e.Inventory + " lists none of them"
	}
	return fmt.Sprintf("a power fault (power-off, destroy) cannot run without power control: no BMC for node(s) %s; %s",
		strings.Join(e.Nodes, ", "), where)
}

// RunPlanInput is what a run plan is computed from.
type RunPlanInput struct {
	Topology *topology.Topology
	NodeMap  NodeMap
	// BMC may be nil: then a power fault is an error.
	BMC  *bmc.Inventory
	Seed uint64
	// Report is the cluster's nodes checked against the scenario (Check).
	Report *Report
	// Deployed are the objects of the services chaosloop deploys (package
	// deploy's PlanObjects: a pod per member).
	Deployed []Object
}

// PlanRun reads the cluster's nodes (a LIST, nothing else) and computes
// the run plan.
func PlanRun(ctx context.Context, log *slog.Logger, c *Cluster, in RunPlanInput) (*RunPlan, error) {
	r, err := Check(ctx, log, c, in.Topology, in.NodeMap)
	if err != nil {
		return nil, err
	}
	in.Report = r
	return NewRunPlan(in)
}

// NewRunPlan computes the run plan; it touches no cluster.
func NewRunPlan(in RunPlanInput) (*RunPlan, error) {
	topo := in.Topology
	labels, err := OwnedLabels(topo.Name)
	if err != nil {
		return nil, err
	}
	p := &RunPlan{Scenario: topo.Name, Context: in.Report.Context, Seed: in.Seed,
		Namespace: Namespace, Labels: labels, NodeLabels: in.Report.Plan,
		Objects: append(objects(topo, in.NodeMap, in.Report), in.Deployed...), Faults: []PlannedFault{}, Findings: []Finding{}}
	for _, f := range in.Report.Findings {
		if f.Severity != Drift {
			p.Findings = append(p.Findings, f)
		}
	}
	var noBMC []string
	for _, f := range faults.Plan(topo.Scenario, in.Seed) {
		pf, missing, err := planFault(topo, in.NodeMap, in.BMC, f)
		if err != nil {
			return nil, err
		}
		noBMC = append(noBMC, missing...)
		p.Faults = append(p.Faults, pf)
	}
	if len(noBMC) > 0 {
		slices.Sort(noBMC)
		e := &NoBMCError{Nodes: slices.Compact(noBMC)}
		if in.BMC != nil {
			e.Inventory = in.BMC.File
		}
		return nil, e
	}
	return p, nil
}

// objects are what a run creates: the namespace, the node agent (its
// DaemonSet and the ServiceAccount and Role it runs with) and per cluster
// node (only nodes the cluster has) a ConfigMap of rules and one the
// agent reports in.
func objects(topo *topology.Topology, m NodeMap, r *Report) []Object {
	missing := map[string]bool{}
	for _, f := range r.Findings {
		if f.Check == "exists" {
			missing[f.Node] = true
		}
	}
	out := []Object{
		{Kind: "Namespace", Name: Namespace, Purpose: "holds every object chaosloop creates (labelled managed-by only: every scenario shares it)"},
		{Kind: "ServiceAccount", Namespace: Namespace, Name: AgentName, Purpose: "the node agent's identity"},
		{Kind: "Role", Namespace: Namespace, Name: AgentName, Purpose: "the node agent may read and write ConfigMaps of this namespace, nothing else"},
		{Kind: "RoleBinding", Namespace: Namespace, Name: AgentName, Purpose: "grants the Role to the node agent"},
		{Kind: "DaemonSet", Namespace: Namespace, Name: AgentName, Purpose: "node agent: iptables/NFQUEUE for isolate and latency, pod cgroup freezes for pause, SIGKILL for a deployed member's kill"},
	}
	for _, n := range topo.Nodes {
		if missing[n.Name] {
			continue
		}
		cn := m.ClusterNode(n.Name)
		out = append(out, Object{Kind: "ConfigMap", Namespace: Namespace, Name: AgentConfigMap(cn), Purpose: "the agent's rules for node/" + cn},
			Object{Kind: "ConfigMap", Namespace: Namespace, Name: AgentStatusConfigMap(cn), Purpose: "what the agent on node/" + cn + " applied"})
	}
	return out
}

// PlanFault resolves one fault to its steps on the cluster: what a run
// (or `fault --on k3s`) does for it. A power fault on nodes without a BMC
// is a *NoBMCError.
func PlanFault(topo *topology.Topology, m NodeMap, inv *bmc.Inventory, f faults.Fault) (PlannedFault, error) {
	pf, missing, err := planFault(topo, m, inv, f)
	if err == nil && len(missing) > 0 {
		e := &NoBMCError{Nodes: missing}
		if inv != nil {
			e.Inventory = inv.File
		}
		err = e
	}
	return pf, err
}

// planFault resolves one fault to its steps; missing are the scenario
// nodes a power fault needs a BMC for and has none.
func planFault(topo *topology.Topology, m NodeMap, inv *bmc.Inventory, f faults.Fault) (PlannedFault, []string, error) {
	pf := PlannedFault{Index: f.Index, At: f.At.String(), Action: f.Action, Target: f.Target, Steps: []Step{}}
	if f.For > 0 {
		pf.For = f.For.String()
	}
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return pf, nil, fmt.Errorf("faults[%d]: %w", f.Index, err)
	}
	var missing []string
	switch f.Action {
	case scenarios.ActionPowerOff, scenarios.ActionDestroy:
		down, err := after(topo, topology.Fault{Action: f.Action, Target: tg})
		if err != nil {
			return pf, nil, fmt.Errorf("faults[%d]: %w", f.Index, err)
		}
		for _, n := range topo.Nodes {
			if down.Up(n) {
				continue
			}
			cn := m.ClusterNode(n.Name)
			b, ok := lookup(inv, n.Name)
			if !ok {
				missing = append(missing, n.Name)
				continue
			}
			pf.Steps = append(pf.Steps, Step{Mechanism: MechanismBMC, Nodes: []string{cn},
				BMC:    &BMCRef{Protocol: b.Protocol, Address: b.Address},
				Action: fmt.Sprintf("BMC %s %s ForceOff/On of node/%s", b.Protocol, b.Address, cn)})
		}
	case scenarios.ActionIsolate:
		st, err := after(topo, topology.Fault{Action: f.Action, Target: tg})
		if err != nil {
			return pf, nil, fmt.Errorf("faults[%d]: %w", f.Index, err)
		}
		pf.Steps = cutSteps(topo, m, st, "drop")
	case scenarios.ActionLatency:
		sides, peers := latencySides(topo, tg)
		pf.Steps = []Step{agentStep(m, sides, peers, "delay"+shaping(f))}
	case scenarios.ActionKill, scenarios.ActionPause:
		st, err := memberStep(topo, m, tg, f.Action)
		if err != nil {
			return pf, nil, fmt.Errorf("faults[%d]: %w", f.Index, err)
		}
		pf.Steps = []Step{st}
	default:
		return pf, nil, fmt.Errorf("faults[%d]: unknown action %q", f.Index, f.Action)
	}
	return pf, missing, nil
}

func lookup(inv *bmc.Inventory, node string) (bmc.BMC, bool) {
	if inv == nil {
		return bmc.BMC{}, false
	}
	return inv.Lookup(node)
}

// after is the topology's state with the one fault applied: each fault is
// planned on its own (what overlapping faults do together is the
// schedule's, at run time).
func after(topo *topology.Topology, f topology.Fault) (*topology.State, error) {
	st := topology.NewState(topo)
	return st, st.Apply(f)
}

// cutSteps are the agent rules an isolation needs: every pair of nodes
// that reach each other without the fault and not with it is cut. Nodes
// that lose the same peers share a step, so a site cut off is two steps
// (its nodes against the rest, the rest against its nodes).
func cutSteps(topo *topology.Topology, m NodeMap, st *topology.State, verb string) []Step {
	before := topology.NewState(topo)
	lost := map[string][]string{}
	var order []string
	for _, a := range topo.Nodes {
		var peers []string
		for _, b := range topo.Nodes {
			if a != b && before.Component(a) == before.Component(b) && st.Component(a) != st.Component(b) {
				peers = append(peers, m.ClusterNode(b.Name))
			}
		}
		if len(peers) == 0 {
			continue
		}
		slices.Sort(peers)
		key := strings.Join(peers, ",")
		if _, seen := lost[key]; !seen {
			order = append(order, key)
		}
		lost[key] = append(lost[key], m.ClusterNode(a.Name))
	}
	steps := []Step{}
	for _, key := range order {
		steps = append(steps, agentStep(m, lost[key], strings.Split(key, ","), verb))
	}
	return steps
}

// latencySides are the nodes a latency fault delays and their peers: a
// link's two sites, or a node against every other node. Names are the
// scenario's; agentStep maps them.
func latencySides(topo *topology.Topology, tg scenarios.Target) (nodes, peers []string) {
	for _, n := range topo.Nodes {
		switch {
		case tg.Kind == scenarios.TargetLink && n.Site().Name == tg.A,
			tg.Kind == scenarios.TargetNode && n.Name == tg.Name:
			nodes = append(nodes, n.Name)
		case tg.Kind == scenarios.TargetLink && n.Site().Name == tg.B,
			tg.Kind == scenarios.TargetNode:
			peers = append(peers, n.Name)
		}
	}
	return nodes, peers
}

func agentStep(m NodeMap, nodes, peers []string, what string) Step {
	cn := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = m.ClusterNode(n)
		}
		slices.Sort(out)
		return out
	}
	nodes, peers = cn(nodes), cn(peers)
	return Step{Mechanism: MechanismAgent, Nodes: nodes, Peers: peers,
		Action: fmt.Sprintf("agent rules on %s against %s: %s", strings.Join(nodes, ", "), strings.Join(peers, ", "), what)}
}

// shaping is a latency fault's delay, jitter and loss in words.
func shaping(f faults.Fault) string {
	var parts []string
	if f.Delay > 0 {
		parts = append(parts, " "+f.Delay.String())
	}
	if f.Jitter > 0 {
		parts = append(parts, " jitter "+f.Jitter.String())
	}
	if f.Loss > 0 {
		parts = append(parts, fmt.Sprintf(" loss %g%%", f.Loss*100))
	}
	return strings.Join(parts, "")
}

// memberStep is a kill (an attached member's pod deleted, its controller
// making a new one; a deployed member's processes sent SIGKILL by the
// node's agent, started again at the fault's end) or a pause (the node's agent freezes the member's pod, thaws it
// at heal).
func memberStep(topo *topology.Topology, m NodeMap, tg scenarios.Target, action string) (Step, error) {
	sv := topo.Service(tg.Name)
	if sv == nil {
		return Step{}, fmt.Errorf("unknown service %q", tg.Name)
	}
	var i int
	if _, err := fmt.Sscan(tg.Member, &i); err != nil || i < 0 || i >= len(sv.Members) {
		return Step{}, fmt.Errorf("service %s has no member %q", tg.Name, tg.Member)
	}
	cn := m.ClusterNode(sv.Members[i].Name)
	member := tg.String()
	if action == scenarios.ActionKill && sv.Spec.Attach == nil {
		return Step{Mechanism: MechanismSignal, Nodes: []string{cn}, Member: member,
			Action: fmt.Sprintf("SIGKILL the processes of %s on node/%s (its agent; started again at the fault's end)", member, cn)}, nil
	}
	if action == scenarios.ActionKill {
		return Step{Mechanism: MechanismPod, Nodes: []string{cn}, Member: member, Action: fmt.Sprintf("delete pod of %s on node/%s", member, cn)}, nil
	}
	return Step{Mechanism: MechanismAgent, Nodes: []string{cn}, Member: member,
		Action: fmt.Sprintf("freeze the pod of %s on node/%s (its cgroup's freezer, as SIGSTOP; thawed at heal)", member, cn)}, nil
}

// WriteText prints the plan as a person reads it: the objects as a
// kubectl table, the node label diff, then the faults in schedule order.
func (p *RunPlan) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "context %s: scenario %s, seed %d; plan only, nothing was changed\n\n", p.Context, p.Scenario, p.Seed)
	var sel []string
	for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
		sel = append(sel, k+"="+p.Labels[k])
	}
	fmt.Fprintf(w, "Objects to create (labelled %s):\n", strings.Join(sel, ","))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  KIND\tNAMESPACE\tNAME\tPURPOSE")
	for _, o := range p.Objects {
		ns := o.Namespace
		if ns == "" {
			ns = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", o.Kind, ns, o.Name, o.Purpose)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nNode labels (`chaosloop label` makes these; a run never changes a node's labels):")
	var b strings.Builder
	p.NodeLabels.WriteText(&b)
	for line := range strings.Lines(b.String()) {
		fmt.Fprint(w, "  ", line)
	}
	fmt.Fprintln(w, "\nFaults, in schedule order:")
	if len(p.Faults) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, f := range p.Faults {
		when := "at " + f.At
		if f.For != "" {
			when += " for " + f.For
		} else {
			when += " until the end"
		}
		fmt.Fprintf(w, "  faults[%d] %s: %s %s\n", f.Index, when, f.Action, f.Target)
		for _, s := range f.Steps {
			fmt.Fprintf(w, "    %s\n", s.Action)
		}
	}
	if len(p.Findings) > 0 {
		fmt.Fprintln(w, "\nCluster findings (validate --on k3s shows the same):")
		for _, f := range p.Findings {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	return nil
}
