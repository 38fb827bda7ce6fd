// Package nemesis injects a scenario's faults into a real cluster and
// recovers them (Jepsen's nemesis; Chaos Mesh's Inject/Recover): isolate
// and latency as rules the node agent applies on each node (package
// agent), power-off and destroy as BMC ForceOff/On (package bmc). What is
// done for a fault is k3s.PlanFault's plan, the one `plan` prints.
//
// Every fault is recorded in the cluster (ConfigMap
// chaosloop-faults-SCENARIO, labelled as the scenario's) before it acts,
// so a later chaosloop — after a crash, or `heal` in another shell — knows
// what is in place and recovers it; Inject and Recover are idempotent.
package nemesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// DefaultWait bounds how long a fault's agents may take to report its
// rules applied, and a BMC to report the power state asked for.
const DefaultWait = time.Minute

// stateKey holds the active faults (JSON) in the state ConfigMap.
const stateKey = "faults.json"

// Nemesis is a scenario's faults on one cluster.
type Nemesis struct {
	Cluster  *k3s.Cluster
	Topology *topology.Topology
	NodeMap  k3s.NodeMap
	// BMC is the BMC inventory; nil refuses power faults.
	BMC *bmc.Inventory
	Log *slog.Logger
	// Wait is DefaultWait when 0.
	Wait time.Duration
	// Lifetime, when set, is how long after injection a node's agent
	// lifts a network fault's rules by itself (agent.Rule.Expires): the
	// bound on a fault whose nodes it cut off the API server, which then
	// cannot learn of its recovery. 0: until recovered.
	Lifetime time.Duration
}

func (n *Nemesis) agents() *agent.Client {
	return &agent.Client{Kube: n.Cluster.Client, Log: n.Log, Scenario: n.Topology.Name}
}

func (n *Nemesis) wait() time.Duration {
	if n.Wait > 0 {
		return n.Wait
	}
	return DefaultWait
}

// StateName is the ConfigMap that records scenario's active faults.
func StateName(scenario string) string { return "chaosloop-faults-" + scenario }

// Inject puts f in place and returns it as recorded; a fault already in
// place is returned as it is. It records the fault first, then acts: a
// failure part-way leaves it recorded, so Recover (or RecoverAll) undoes
// what was done.
func (n *Nemesis) Inject(ctx context.Context, f lab.Fault) (lab.Injected, error) {
	pf, err := n.plan(f)
	if err != nil {
		return lab.Injected{}, err
	}
	active, err := n.ActiveFaults(ctx)
	if err != nil {
		return lab.Injected{}, err
	}
	if i := slices.IndexFunc(active, func(a lab.Injected) bool { return a.Key() == f.Key() }); i >= 0 {
		return active[i], nil
	}
	if err := n.requireAgents(ctx, pf); err != nil {
		return lab.Injected{}, err
	}
	inj := lab.Injected{Fault: f, Since: time.Now().UTC()}
	if err := n.record(ctx, func(a []lab.Injected) []lab.Injected { return append(a, inj) }); err != nil {
		return lab.Injected{}, err
	}
	n.Log.Info("nemesis: inject", "action", f.Action, "target", f.Target)
	return inj, n.act(ctx, f, pf, true)
}

// Recover undoes f (nothing to do when it is not in place) and forgets it
// once undone.
func (n *Nemesis) Recover(ctx context.Context, f lab.Fault) error {
	active, err := n.ActiveFaults(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(active, func(a lab.Injected) bool { return a.Key() == f.Key() })
	if i < 0 {
		return nil
	}
	f = active[i].Fault // with its delay, as injected
	pf, err := n.plan(f)
	if err != nil {
		return err
	}
	n.Log.Info("nemesis: recover", "action", f.Action, "target", f.Target)
	if err := n.act(ctx, f, pf, false); err != nil {
		return err
	}
	return n.record(ctx, func(a []lab.Injected) []lab.Injected {
		return slices.DeleteFunc(a, func(x lab.Injected) bool { return x.Key() == f.Key() })
	})
}

// RecoverAll undoes every fault in place, the newest first.
func (n *Nemesis) RecoverAll(ctx context.Context) error {
	active, err := n.ActiveFaults(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range slices.Backward(active) {
		if err := n.Recover(ctx, a.Fault); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", a.Action, a.Target, err))
		}
	}
	return errors.Join(errs...)
}

// ActiveFaults are the faults recorded in place, oldest first.
func (n *Nemesis) ActiveFaults(ctx context.Context) ([]lab.Injected, error) {
	return Active(ctx, n.Cluster, n.Topology.Name)
}

// Active are the faults recorded in place for scenario on c.
func Active(ctx context.Context, c *k3s.Cluster, scenario string) ([]lab.Injected, error) {
	cm, err := c.Client.CoreV1().ConfigMaps(k3s.Namespace).Get(ctx, StateName(scenario), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nemesis: reading the faults in place: %w", err)
	}
	return parseState(cm)
}

func parseState(cm *corev1.ConfigMap) ([]lab.Injected, error) {
	var out []lab.Injected
	if s := cm.Data[stateKey]; s != "" {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("nemesis: %s/%s: %w", cm.Namespace, cm.Name, err)
		}
	}
	return out, nil
}

// record changes the recorded faults, creating the ConfigMap (and the
// namespace) when need be; conflicts are retried.
func (n *Nemesis) record(ctx context.Context, change func([]lab.Injected) []lab.Injected) error {
	owned, err := k3s.OwnedLabels(n.Topology.Name)
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, n.Cluster); err != nil {
		return err
	}
	cms := n.Cluster.Client.CoreV1().ConfigMaps(k3s.Namespace)
	return retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		cm, err := cms.Get(ctx, StateName(n.Topology.Name), metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StateName(n.Topology.Name), Namespace: k3s.Namespace, Labels: owned}}
		}
		old, err := parseState(cm)
		if err != nil {
			return err
		}
		b, err := json.Marshal(change(old))
		if err != nil {
			return err
		}
		cm.Data = map[string]string{stateKey: string(b)}
		if create {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: agent.FieldManager})
		} else {
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: agent.FieldManager})
		}
		return err
	})
}

// ensureNamespace creates namespace chaosloop, labelled as chaosloop's,
// unless it exists.
func ensureNamespace(ctx context.Context, c *k3s.Cluster) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: k3s.Namespace, Labels: map[string]string{k3s.LabelManagedBy: k3s.ManagedBy}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("nemesis: namespace %s: %w", k3s.Namespace, err)
	}
	return nil
}

// plan is what is done for f on this cluster; a fault the backend cannot
// carry out yet is an error before anything is recorded.
func (n *Nemesis) plan(f lab.Fault) (k3s.PlannedFault, error) {
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return k3s.PlannedFault{}, err
	}
	if !slices.Contains(scenarios.ActionTargets(f.Action), tg.Kind) {
		return k3s.PlannedFault{}, fmt.Errorf("%s cannot target a %s (it takes %s)", f.Action, tg.Kind, strings.Join(scenarios.ActionTargets(f.Action), ", "))
	}
	if f.Action == scenarios.ActionKill || f.Action == scenarios.ActionPause {
		if err := n.numberedMember(tg); err != nil {
			return k3s.PlannedFault{}, fmt.Errorf("%s %s: %w", f.Action, f.Target, err)
		}
	}
	return k3s.PlanFault(n.Topology, n.NodeMap, n.BMC, faults.Fault{Fault: f})
}

// requireAgents refuses a fault whose rules no agent would apply, before
// anything is recorded or written.
func (n *Nemesis) requireAgents(ctx context.Context, pf k3s.PlannedFault) error {
	running, err := n.agents().RunningAgents(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, st := range pf.Steps {
		if st.Mechanism != k3s.MechanismAgent && st.Mechanism != k3s.MechanismSignal {
			continue
		}
		for _, node := range st.Nodes {
			if !running[node] {
				missing = append(missing, node)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%s %s: no chaosloop agent of scenario %s runs on node(s) %s: deploy the agent first (its image: chaosloop images push)",
			pf.Action, pf.Target, n.Topology.Name, strings.Join(slices.Compact(missing), ", "))
	}
	return nil
}

// act carries out (on) or undoes (!on) a planned fault's steps: the agent
// rules, then waits until every node's agent reports them; the power
// steps, each waited for. Consecutive steps of one mechanism act on all
// their nodes at once (eachNode): a site cut off, or a rack whose power
// fails, is every node's at the same moment.
func (n *Nemesis) act(ctx context.Context, f lab.Fault, pf k3s.PlannedFault, on bool) error {
	var errs []error
	id := RuleID(f)
	gens := map[string]int64{}
	for _, batch := range byMechanism(pf.Steps) {
		switch batch[0].Mechanism {
		case k3s.MechanismAgent:
			rules, err := n.agentRules(ctx, f, batch, on)
			if err != nil && on {
				return err
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, a := range eachNode(slices.Collect(maps.Keys(rules)), func(node string) (int64, error) {
				if on {
					return n.agents().Inject(ctx, node, rules[node])
				}
				return n.agents().Recover(ctx, node, id)
			}) {
				if a.err != nil {
					errs = append(errs, a.err)
					continue
				}
				gens[a.node] = a.gen
			}
		case k3s.MechanismPod:
			// a kill is not undone: the pod's controller makes a new one
			if on {
				if err := n.deletePod(ctx, f); err != nil {
					errs = append(errs, err)
				}
			}
		case k3s.MechanismSignal:
			// nor is a hard kill: the lab starts the member again
			if on {
				if err := n.killPods(ctx, f); err != nil {
					errs = append(errs, err)
				}
			}
		case k3s.MechanismBMC:
			// injecting turns the nodes off; recovering, on
			var nodes []string
			for _, st := range batch {
				nodes = append(nodes, st.Nodes[0])
			}
			for _, a := range eachNode(nodes, func(node string) (int64, error) { return 0, n.power(ctx, node, on) }) {
				if a.err != nil {
					errs = append(errs, a.err)
				}
			}
		}
	}
	wctx, cancel := context.WithTimeout(ctx, n.wait())
	defer cancel()
	for _, a := range eachNode(slices.Collect(maps.Keys(gens)), func(node string) (int64, error) {
		_, err := n.agents().WaitApplied(wctx, node, gens[node])
		return 0, err
	}) {
		if a.err != nil {
			errs = append(errs, a.err)
		}
	}
	return errors.Join(errs...)
}

// byMechanism splits steps into runs of consecutive steps of one
// mechanism.
func byMechanism(steps []k3s.Step) [][]k3s.Step {
	var out [][]k3s.Step
	for i, st := range steps {
		if i == 0 || st.Mechanism != steps[i-1].Mechanism {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], st)
	}
	return out
}

// agentRules is each node's rule for f's agent steps (on), or the nodes
// that hold it (!on: their rules are not needed to remove them).
func (n *Nemesis) agentRules(ctx context.Context, f lab.Fault, steps []k3s.Step, on bool) (map[string]agent.Rule, error) {
	id := RuleID(f)
	out := map[string]agent.Rule{}
	for _, st := range steps {
		var rule agent.Rule
		nodes := st.Nodes
		switch {
		case on && f.Action == scenarios.ActionPause:
			// the node the member's pods run on, wherever that is
			ms, err := n.memberPods(ctx, f)
			if err != nil {
				return nil, err
			}
			rule, nodes = agent.Rule{ID: id, Kind: agent.Freeze}, nil
			for _, m := range ms {
				if m.node == "" {
					return nil, fmt.Errorf("nemesis: %s: pod %s/%s is not scheduled on a node: nothing to freeze", f.Target, m.namespace, m.name)
				}
				if !slices.Contains(nodes, m.node) {
					nodes = append(nodes, m.node)
				}
				rule.Pods = append(rule.Pods, string(m.uid))
				n.Log.Info("nemesis: pause: freezing the member's pod", "target", f.Target, "pod", m.namespace+"/"+m.name, "node", m.node)
			}
		case on:
			peers, err := n.addresses(ctx, st.Peers)
			if err != nil {
				return nil, err
			}
			rule = agent.Rule{ID: id, Kind: agent.Isolate, Peers: peers}
			if f.Action == scenarios.ActionLatency {
				rule.Kind, rule.Delay, rule.Jitter, rule.Loss = agent.Latency, agent.Duration(f.Delay), agent.Duration(f.Jitter), f.Loss
			}
		case f.Action == scenarios.ActionPause:
			// recovered on whichever node holds it (the pod's)
			var err error
			if nodes, err = n.agents().NodesWith(ctx, id); err != nil {
				return nil, err
			}
		}
		if on && n.Lifetime > 0 {
			exp := time.Now().Add(n.Lifetime)
			rule.Expires = &exp
		}
		for _, node := range nodes {
			out[node] = rule
		}
	}
	return out, nil
}

// answer is one node's to eachNode.
type answer struct {
	node string
	gen  int64
	err  error
}

// eachNode runs do for every node at once and returns each node's
// answer, in the nodes' sorted order. One after the other, a fault on
// many nodes went in over many round trips to a busy API server (a site
// of 12 kind nodes cut off: 33 s until the last agent confirmed), so its
// first nodes were cut before its last: a partition the scenario does
// not describe, and on the last nodes a fault shorter than its `for`.
func eachNode(nodes []string, do func(node string) (int64, error)) []answer {
	sorted := slices.Compact(slices.Sorted(slices.Values(nodes)))
	res := make([]answer, len(sorted))
	var wg sync.WaitGroup
	for i, node := range sorted {
		res[i].node = node
		wg.Go(func() { res[i].gen, res[i].err = do(node) })
	}
	wg.Wait()
	return res
}

// addresses are the cluster nodes' addresses (InternalIP) and pod ranges:
// what a cut from them must drop.
// One list, not a get per node: on a busy API server each round trip
// delays the fault.
func (n *Nemesis) addresses(ctx context.Context, nodes []string) ([]string, error) {
	list, err := n.Cluster.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("nemesis: nodes: %w", err)
	}
	var out []string
	for _, name := range nodes {
		i := slices.IndexFunc(list.Items, func(cn corev1.Node) bool { return cn.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("nemesis: node %s: not in the cluster", name)
		}
		cn := &list.Items[i]
		for _, a := range cn.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && !strings.Contains(a.Address, ":") {
				out = append(out, a.Address)
			}
		}
		for _, c := range cn.Spec.PodCIDRs {
			if !strings.Contains(c, ":") {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nemesis: nodes %s have no IPv4 address", strings.Join(nodes, ", "))
	}
	return out, nil
}

// power turns a cluster node off (on=true: the fault) or on through its
// BMC and waits until the BMC reports it.
func (n *Nemesis) power(ctx context.Context, node string, off bool) error {
	b, ok := n.bmcOf(node)
	if !ok {
		return fmt.Errorf("nemesis: node %s has no BMC", node)
	}
	ctl, err := bmc.New(ctx, n.Log, b)
	if err != nil {
		return fmt.Errorf("nemesis: BMC of %s: %w", node, err)
	}
	want, ask := bmc.On, ctl.PowerOn
	if off {
		want, ask = bmc.Off, ctl.PowerOff
	}
	if err := ask(ctx); err != nil {
		return fmt.Errorf("nemesis: power %s %s through its BMC: %w", want, node, err)
	}
	wctx, cancel := context.WithTimeout(ctx, n.wait())
	defer cancel()
	if _, err := bmc.WaitFor(wctx, n.Log, ctl, want); err != nil {
		return fmt.Errorf("nemesis: power %s %s through its BMC: %w", want, node, err)
	}
	return nil
}

// bmcOf is the BMC of a cluster node: the inventory lists scenario nodes.
func (n *Nemesis) bmcOf(clusterNode string) (bmc.BMC, bool) {
	if n.BMC == nil {
		return bmc.BMC{}, false
	}
	for _, sn := range n.Topology.Nodes {
		if n.NodeMap.ClusterNode(sn.Name) == clusterNode {
			return n.BMC.Lookup(sn.Name)
		}
	}
	return bmc.BMC{}, false
}

// numberedMember says why a kill or pause of tg cannot be done on this
// cluster: only a numbered member has a pod chaosloop can name (it knows
// no leader without engine probes of the adopter's services).
func (n *Nemesis) numberedMember(tg scenarios.Target) error {
	sv := n.Topology.Service(tg.Name)
	switch {
	case sv == nil:
		return fmt.Errorf("unknown service %q", tg.Name)
	case sv.Spec.Attach == nil && deploy.Deployable(sv) != nil:
		return fmt.Errorf("service %s is not attached (services[].attach), and chaosloop does not deploy it: %w", tg.Name, deploy.Deployable(sv))
	case tg.Member == "" || tg.Member == "leader":
		return fmt.Errorf("name the member (service/%s/INDEX): which pod is %s is not known on --on k3s yet", tg.Name, map[bool]string{true: "the leader", false: "drawn"}[tg.Member == "leader"])
	}
	return nil
}

// deletePod kills a member: its pods are deleted (each with its UID as a
// precondition, so a pod made meanwhile is not). An attached member's
// controller makes a new one, as when a node's kubelet loses a container
// for good; a deployed member is started again at the fault's end, as in
// the labs.
func (n *Nemesis) deletePod(ctx context.Context, f lab.Fault) error {
	return n.eachPod(ctx, f, func(m member) error {
		n.Log.Info("nemesis: kill: deleting the member's pod", "target", f.Target, "pod", m.namespace+"/"+m.name, "node", m.node)
		err := n.Cluster.Client.CoreV1().Pods(m.namespace).Delete(ctx, m.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &m.uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting pod %s/%s: %w", m.namespace, m.name, err)
		}
		return nil
	})
}

// eachPod does act on each pod of f's member, all of them whatever fails,
// and joins what failed.
func (n *Nemesis) eachPod(ctx context.Context, f lab.Fault, act func(member) error) error {
	ms, err := n.memberPods(ctx, f)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		if err := act(m); err != nil {
			errs = append(errs, fmt.Errorf("nemesis: %s: %w", f.Target, err))
		}
	}
	return errors.Join(errs...)
}

// killPods sends SIGKILL to the processes of f's member, a deployed one:
// its pods' running containers, through the agent on each pod's node
// (agent.Kill). Their pods end as a crashed process's would, and stay
// ended (they are not restarted in place) until the lab starts the
// member again.
func (n *Nemesis) killPods(ctx context.Context, f lab.Fault) error {
	return n.eachPod(ctx, f, func(m member) error {
		if len(m.containers) == 0 {
			n.Log.Info("nemesis: kill: the member's pod runs no container: dead already", "target", f.Target, "pod", m.namespace+"/"+m.name)
			return nil
		}
		argv := []string{"chaosloop", "internal", "agent", "--cgroups", agent.CgroupsMount, "--kill-pod", string(m.uid), "--kill", strings.Join(m.containers, ",")}
		out, _, err := n.agents().Exec(ctx, n.Cluster.Config, m.node, nil, argv...)
		if err != nil {
			return fmt.Errorf("SIGKILL to pod %s/%s: %w", m.namespace, m.name, err)
		}
		n.Log.Info("nemesis: kill: sent SIGKILL to the member's processes", "target", f.Target, "pod", m.namespace+"/"+m.name, "node", m.node, "processes", strings.TrimSpace(string(out)))
		return nil
	})
}

// member is a member's pod as it is now.
type member struct {
	namespace, name, node string
	uid                   types.UID
	// containers are the IDs of its running containers (agent.ContainerID)
	containers []string
}

// memberPods finds the pods of f's member (service/NAME/INDEX) and the
// cluster node each runs on: an attached member's pod, or a deployed
// member's, one per process (Redis: its redis-server and its Sentinel).
func (n *Nemesis) memberPods(ctx context.Context, f lab.Fault) ([]member, error) {
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return nil, err
	}
	var i int
	if _, err := fmt.Sscan(tg.Member, &i); err != nil {
		return nil, fmt.Errorf("nemesis: %s: member %q", f.Target, tg.Member)
	}
	topoSv := n.Topology.Service(tg.Name)
	if topoSv == nil {
		return nil, fmt.Errorf("nemesis: %s: unknown service %s", f.Target, tg.Name)
	}
	if topoSv.Spec.Attach == nil {
		return n.deployedPods(ctx, f, topoSv, i)
	}
	m, err := n.attachedPod(ctx, f, topoSv, i)
	if err != nil {
		return nil, err
	}
	return []member{m}, nil
}

// attachedPod is the pod of member i of an attached service.
func (n *Nemesis) attachedPod(ctx context.Context, f lab.Fault, topoSv *topology.Service, i int) (member, error) {
	sv, err := k3s.AttachedOf(ctx, n.Cluster, topoSv, n.NodeMap)
	if err != nil {
		return member{}, err
	}
	k := slices.IndexFunc(sv.Members, func(m k3s.AttachedMember) bool { return m.Index == i })
	if k < 0 {
		return member{}, fmt.Errorf("nemesis: %s: service %s has no pod of member %d (%d pods match %s in namespace %s)", f.Target, sv.Service, i, len(sv.Members), sv.Selector, sv.Namespace)
	}
	m := sv.Members[k]
	pod, err := n.Cluster.Client.CoreV1().Pods(sv.Namespace).Get(ctx, m.Pod, metav1.GetOptions{})
	if err != nil {
		return member{}, fmt.Errorf("nemesis: %s: pod %s/%s: %w", f.Target, sv.Namespace, m.Pod, err)
	}
	return member{namespace: sv.Namespace, name: pod.Name, node: pod.Spec.NodeName, uid: pod.UID}, nil
}

var ruleChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// RuleID names a fault's agent rules: its action and target, readable,
// cut to the agent's 63 characters with a hash of the whole when longer.
func RuleID(f lab.Fault) string {
	id := ruleChars.ReplaceAllString(f.Action+"."+strings.ReplaceAll(f.Target, "/", "."), "-")
	if len(id) <= 63 {
		return id
	}
	h := fnv.New32a()
	h.Write([]byte(f.Key()))
	return fmt.Sprintf("%s-%08x", id[:54], h.Sum32())
}

// deployedPods are the pods of member i of a service chaosloop deployed
// (package deploy): those not being deleted.
func (n *Nemesis) deployedPods(ctx context.Context, f lab.Fault, sv *topology.Service, i int) ([]member, error) {
	if i < 0 || i >= len(sv.Members) {
		return nil, fmt.Errorf("nemesis: %s: service %s has %d members", f.Target, sv.Name, len(sv.Members))
	}
	sel, err := deploy.MemberSelector(n.Topology.Name, deploy.MemberName(sv.Name, i))
	if err != nil {
		return nil, err
	}
	list, err := n.Cluster.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("nemesis: %s: listing its pods: %w", f.Target, err)
	}
	var out []member
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		m := member{namespace: p.Namespace, name: p.Name, node: p.Spec.NodeName, uid: p.UID}
		for _, cs := range p.Status.ContainerStatuses {
			if id := agent.ContainerID(cs.ContainerID); id != "" && cs.State.Running != nil {
				m.containers = append(m.containers, id)
			}
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nemesis: %s: no pod of member %s (%s in namespace %s)", f.Target, deploy.MemberName(sv.Name, i), sel, k3s.Namespace)
	}
	return out, nil
}
