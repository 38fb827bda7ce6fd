package chaosmesh

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"

	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// What each approximation does not do that chaosloop does, in the words
// of the annotations and of the warning.
const (
	approxPower = "Chaos Mesh cannot cut a node's power: every pod on the nodes that lose power " +
		"fails (pod-failure: its containers stop, gracefully, and run a pause image) for the fault's " +
		"duration; the nodes, their kubelets and the pods of other namespaces keep running"
	approxDestroy = approxPower + "; no disk is wiped: the pods keep their data"
	approxIsolate = "Chaos Mesh partitions pods, not machines: the pods on the cut-off nodes lose " +
		"their traffic with the pods on the other nodes; the nodes themselves (kubelet, API " +
		"server) stay connected unless the pods use hostNetwork"
	approxLatency = "Chaos Mesh delays pod traffic (netem in each pod), not the " +
		"link or node itself; traffic of the nodes themselves is not delayed"
	approxKill = "container-kill sends SIGKILL as chaosloop does, but the kubelet restarts the " +
		"container as its restartPolicy says (at once for Always; never for chaosloop's own " +
		"member pods), not after 'for' as chaosloop does"
	approxPause = "Chaos Mesh cannot freeze a process (SIGSTOP): the member's pods are cut off " +
		"from all traffic instead; peers see the same silence, but the member keeps running " +
		"and may notice it lost its peers; a hostNetwork pod's partition cuts its whole node"
	approxAnyMember = "chaosloop draws one member (every process of it) from the run's seed; " +
		"Chaos Mesh picks one pod of the service at random"
	approxLeader = "Chaos Mesh does not know the service's leader: it picks one pod of the " +
		"service at random"
	noEffect = "alone it takes no node down and cuts no node off (a rack goes down only with " +
		"every one of its feeds, is cut off only with every one of its switches; a cut link's " +
		"traffic may transit a third site)"
)

// part is one chaos template of a fault, before it is named and timed.
type part struct {
	kind  v1alpha1.TemplateType
	chaos v1alpha1.EmbedChaos
}

// mapped is a fault in Chaos Mesh's terms.
type mapped struct {
	parts []part
	// approx says how the parts differ from what chaosloop does.
	approx string
	// none says why the fault has no parts.
	none string
}

// mapper maps faults on one topology, selecting pods in one namespace.
type mapper struct {
	t  *topology.Topology
	ns string
}

// mapFault maps one fault of the scenario.
func (m *mapper) mapFault(f scenarios.Fault) (mapped, error) {
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return mapped{}, err
	}
	switch f.Action {
	case scenarios.ActionPowerOff, scenarios.ActionDestroy, scenarios.ActionIsolate:
		return m.mapDomain(f.Action, tg)
	case scenarios.ActionLatency:
		return m.mapLatency(f, tg)
	case scenarios.ActionKill, scenarios.ActionPause:
		return m.mapMember(f.Action, tg)
	}
	return mapped{}, fmt.Errorf("action %q has no Chaos Mesh form", f.Action)
}

// mapDomain maps a power or network fault through what it does to the
// nodes: pods fail where power goes, and every cut-off group is parted
// from the rest (a dark site's router carries no transit either).
func (m *mapper) mapDomain(action string, tg scenarios.Target) (mapped, error) {
	e, err := effectOf(m.t, topology.Fault{Action: action, Target: tg})
	if err != nil {
		return mapped{}, err
	}
	var out mapped
	if len(e.down) > 0 {
		out.parts = append(out.parts, m.podChaos(v1alpha1.PodFailureAction, m.onNodes(e.down), nil))
	}
	for _, pair := range e.cutOff() {
		target := m.onNodes(pair[1])
		out.parts = append(out.parts, m.networkChaos(v1alpha1.PartitionAction, m.onNodes(pair[0]), &target, v1alpha1.TcParameter{}))
	}
	switch {
	case len(out.parts) == 0:
		out.none = noEffect
	case action == scenarios.ActionPowerOff:
		out.approx = approxPower
	case action == scenarios.ActionDestroy:
		out.approx = approxDestroy
	default:
		out.approx = approxIsolate
	}
	return out, nil
}

// mapLatency delays the traffic between a link's two sites, or between a
// node and every other node, both ways (as the lab delays a link's
// packets in both directions).
func (m *mapper) mapLatency(f scenarios.Fault, tg scenarios.Target) (mapped, error) {
	var from, to []string
	for _, n := range m.t.Nodes {
		switch {
		case tg.Kind == scenarios.TargetLink && n.Site().Name == tg.A,
			tg.Kind == scenarios.TargetNode && n.Name == tg.Name:
			from = append(from, n.Name)
		case tg.Kind == scenarios.TargetNode, n.Site().Name == tg.B:
			to = append(to, n.Name)
		}
	}
	if len(from) == 0 || len(to) == 0 {
		return mapped{none: "no node on one side of " + tg.String()}, nil
	}
	action, tc := netem(f)
	target := m.onNodes(to)
	return mapped{
		parts:  []part{m.networkChaos(action, m.onNodes(from), &target, tc)},
		approx: approxLatency,
	}, nil
}

// netem is the tc action and parameters of a latency fault: delay,
// loss, or both through netem.
func netem(f scenarios.Fault) (v1alpha1.NetworkChaosAction, v1alpha1.TcParameter) {
	var tc v1alpha1.TcParameter
	if d, j := f.Delay.D(), f.Jitter.D(); d > 0 || j > 0 {
		tc.Delay = &v1alpha1.DelaySpec{Latency: tcDuration(d)}
		if j > 0 {
			tc.Delay.Jitter = tcDuration(j)
		}
	}
	if f.Loss != nil && *f.Loss > 0 {
		// the scenario's is a probability, Chaos Mesh's a percentage
		pct := math.Round(*f.Loss*1e6) / 1e4
		tc.Loss = &v1alpha1.LossSpec{Loss: strconv.FormatFloat(pct, 'f', -1, 64)}
	}
	switch {
	case tc.Delay != nil && tc.Loss != nil:
		return v1alpha1.NetemAction, tc
	case tc.Delay != nil:
		return v1alpha1.DelayAction, tc
	}
	return v1alpha1.LossAction, tc
}

// tcDuration writes d in the single unit the CRD's pattern takes
// (^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h)$; Go's 1m30s is refused), the
// largest that keeps it whole.
func tcDuration(d time.Duration) string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}} {
		if d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// mapMember maps kill (container-kill, SIGKILL) and pause (a partition
// from everything: Chaos Mesh has no freeze) of a service member.
func (m *mapper) mapMember(action string, tg scenarios.Target) (mapped, error) {
	sel, approx, err := m.member(tg)
	if err != nil {
		return mapped{}, err
	}
	out := mapped{approx: approxKill}
	if action == scenarios.ActionPause {
		out.approx = approxPause
		out.parts = []part{m.networkChaos(v1alpha1.PartitionAction, sel, nil, v1alpha1.TcParameter{})}
	} else {
		out.parts = []part{m.podChaos(v1alpha1.ContainerKillAction, sel, []string{kindlab.MainContainer})}
	}
	if approx != "" {
		out.approx += "; " + approx
	}
	return out, nil
}

// member selects a member's pods by chaosloop's labels: every pod of
// member INDEX, or one pod of the service for a member chaosloop chooses
// at run time.
func (m *mapper) member(tg scenarios.Target) (v1alpha1.PodSelector, string, error) {
	sv := m.t.Service(tg.Name)
	if sv == nil {
		return v1alpha1.PodSelector{}, "", fmt.Errorf("unknown service %q", tg.Name)
	}
	labels := map[string]string{kindlab.LabelService: kindlab.PodName(sv.Name)}
	sel := v1alpha1.PodSelector{Mode: v1alpha1.OneMode}
	approx := approxAnyMember
	switch tg.Member {
	case "leader":
		approx = approxLeader
	case "":
	default:
		i, err := strconv.Atoi(tg.Member)
		if err != nil || i >= sv.Replicas() {
			return sel, "", fmt.Errorf("%s: service %s has %d members", tg, sv.Name, sv.Replicas())
		}
		// the kind backend's member names (clusters/local: SERVICE-INDEX)
		labels[kindlab.LabelMember] = kindlab.PodName(fmt.Sprintf("%s-%d", sv.Name, i))
		sel.Mode, approx = v1alpha1.AllMode, ""
	}
	sel.Selector = v1alpha1.PodSelectorSpec{GenericSelectorSpec: v1alpha1.GenericSelectorSpec{
		Namespaces: []string{m.ns}, LabelSelectors: labels,
	}}
	return sel, approx, nil
}

// onNodes selects every pod of the namespace on the named nodes.
func (m *mapper) onNodes(nodes []string) v1alpha1.PodSelector {
	return v1alpha1.PodSelector{
		Selector: v1alpha1.PodSelectorSpec{
			GenericSelectorSpec: v1alpha1.GenericSelectorSpec{Namespaces: []string{m.ns}},
			Nodes:               nodes,
		},
		Mode: v1alpha1.AllMode,
	}
}

func (m *mapper) podChaos(action v1alpha1.PodChaosAction, sel v1alpha1.PodSelector, containers []string) part {
	spec := &v1alpha1.PodChaosSpec{
		ContainerSelector: v1alpha1.ContainerSelector{PodSelector: sel, ContainerNames: containers},
		Action:            action,
	}
	return part{kind: v1alpha1.TypePodChaos, chaos: v1alpha1.EmbedChaos{PodChaos: spec}}
}

// networkChaos is a NetworkChaos both ways between sel and target (nil:
// every address).
func (m *mapper) networkChaos(action v1alpha1.NetworkChaosAction, sel v1alpha1.PodSelector, target *v1alpha1.PodSelector, tc v1alpha1.TcParameter) part {
	spec := &v1alpha1.NetworkChaosSpec{
		PodSelector: sel, Action: action, Direction: v1alpha1.Both, Target: target, TcParameter: tc,
	}
	return part{kind: v1alpha1.TypeNetworkChaos, chaos: v1alpha1.EmbedChaos{NetworkChaos: spec}}
}
