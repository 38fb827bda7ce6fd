// Package agent is chaosloop's node agent for `--on k3s`: network faults
// (isolate, latency) on an adopter's nodes, applied by a small DaemonSet
// with NET_ADMIN that turns a declarative desired state into iptables
// rules on its node.
//
// The desired state of a node is a ConfigMap in namespace Namespace
// (ConfigMapName(node)): a JSON list of Rule under the key "rules", and
// a generation annotation the Client bumps on every change. The agent
// (Run) watches it, reconciles the node's iptables to it, and reports what
// it applied, with the generation it saw, in a second ConfigMap
// (StatusName(node)); writers never contend for one object.
//
// Faults end only by Client.Recover or Client.RecoverAll: an agent that
// stops or restarts leaves its rules in place (a restarting agent must
// not heal a fault), and a new agent adopts them. Cleanup removes every
// chaosloop chain of a node, for `chaosloop down`. One exception to
// "rules stay": a latency rule's packets are held by the agent process
// itself (NFQUEUE, see netdelay); while no agent runs they pass undelayed
// (--queue-bypass), and the new agent delays them again.
package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
)

// Namespace holds the agent, its desired states and its status: what
// chaosloop owns on a cluster (package k3s).
const Namespace = k3s.Namespace

const (
	// ManagedBy is the label on everything chaosloop creates.
	ManagedByLabel = k3s.LabelManagedBy
	ManagedBy      = k3s.ManagedBy
	// ComponentLabel tells the desired states (ComponentFaults) from the
	// agent's status (ComponentStatus) and its workload (ComponentAgent).
	ComponentLabel  = "app.kubernetes.io/component"
	ComponentFaults = "agent-faults"
	ComponentStatus = "agent-status"
	ComponentAgent  = "agent"
	// NodeLabel on a desired state or status names its node.
	NodeLabel = "chaosloop.io/node"
	// GenerationAnnotation is the desired state's generation: ConfigMaps
	// have no metadata.generation, so the Client counts its changes.
	GenerationAnnotation = "chaosloop.io/generation"
	// RulesKey and StatusKey are the ConfigMaps' data keys.
	RulesKey  = "rules"
	StatusKey = "status"
	// FieldManager is who the API server records for chaosloop's writes.
	FieldManager = "chaosloop"
)

// ConfigMapName is the desired state of node's faults.
func ConfigMapName(node string) string { return k3s.AgentConfigMap(node) }

// StatusName is where node's agent reports what it applied.
func StatusName(node string) string { return k3s.AgentStatusConfigMap(node) }

// Kind is what a rule does.
type Kind string

const (
	// Isolate drops every packet between the node and the peers, in both
	// directions, whether the node sends, receives or forwards it.
	Isolate Kind = "isolate"
	// Latency delays (and with Loss drops) the packets the node sends or
	// forwards to the peers: its egress only, so a round trip between
	// the node and a peer grows by Delay.
	Latency Kind = "latency"
	// Freeze stops every process of the pod Pod on the node, as SIGSTOP
	// does (a pause), through its cgroup freezer; no peers.
	Freeze Kind = "freeze"
)

// Duration is a time.Duration written as "50ms" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"50ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Rule is one fault on one node.
type Rule struct {
	// ID names the rule among the node's rules; Recover takes it.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Peers are IPv4 addresses or CIDRs (isolate, latency).
	Peers []string `json:"peers,omitempty"`
	// Pods are the UIDs of a freeze rule's pods (a member's processes,
	// each a pod of its own).
	Pods   []string `json:"pods,omitempty"`
	Delay  Duration `json:"delay,omitempty"`
	Jitter Duration `json:"jitter,omitempty"`
	// Loss is the probability (0..1) a latency rule drops a packet.
	Loss float64 `json:"loss,omitempty"`
	// Expires, when set, is when the agent lifts the rule by itself, even
	// cut off from the API server (by this very rule, say: it then cannot
	// learn of a Recover). The desired state still lists it until Recover.
	Expires *time.Time `json:"expires,omitempty"`
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks r and returns it normalised: peers as sorted, unique
// CIDRs, so that equal rules are written (and hashed) the same.
func (r Rule) Validate() (Rule, error) {
	if !idRE.MatchString(r.ID) {
		return r, fmt.Errorf("rule id %q: want 1-63 letters, digits, '.', '_' or '-'", r.ID)
	}
	switch r.Kind {
	case Isolate:
		if r.Delay != 0 || r.Jitter != 0 || r.Loss != 0 {
			return r, fmt.Errorf("rule %s: isolate takes no delay, jitter or loss", r.ID)
		}
	case Latency:
		switch {
		case r.Delay < 0 || r.Jitter < 0:
			return r, fmt.Errorf("rule %s: negative delay or jitter", r.ID)
		case !(r.Loss >= 0 && r.Loss <= 1):
			return r, fmt.Errorf("rule %s: loss %v not in [0,1]", r.ID, r.Loss)
		case r.Delay == 0 && r.Jitter == 0 && r.Loss == 0:
			return r, fmt.Errorf("rule %s: latency needs a delay, jitter or loss", r.ID)
		}
	case Freeze:
		switch {
		case r.Delay != 0 || r.Jitter != 0 || r.Loss != 0 || len(r.Peers) > 0:
			return r, fmt.Errorf("rule %s: freeze takes no peers, delay, jitter or loss", r.ID)
		case len(r.Pods) == 0:
			return r, fmt.Errorf("rule %s: freeze: no pod", r.ID)
		}
		for _, p := range r.Pods {
			if !podUIDRE.MatchString(p) {
				return r, fmt.Errorf("rule %s: freeze: pod %q is not a pod UID", r.ID, p)
			}
		}
		r.Pods = slices.Compact(slices.Sorted(slices.Values(r.Pods)))
	default:
		return r, fmt.Errorf("rule %s: kind %q: want %s, %s or %s", r.ID, r.Kind, Isolate, Latency, Freeze)
	}
	if r.Kind != Freeze && len(r.Pods) > 0 {
		return r, fmt.Errorf("rule %s: %s takes no pod", r.ID, r.Kind)
	}
	if r.Expires != nil {
		// one form, so that equal rules hash (and chain) the same
		t := r.Expires.UTC().Truncate(time.Millisecond)
		r.Expires = &t
	}
	if r.Kind == Freeze {
		return r, nil
	}
	if len(r.Peers) == 0 {
		return r, fmt.Errorf("rule %s: no peers", r.ID)
	}
	peers := make([]string, 0, len(r.Peers))
	for _, p := range r.Peers {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return r, fmt.Errorf("rule %s: peer %q: not an IP address or CIDR", r.ID, p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if !pfx.Addr().Is4() {
			return r, fmt.Errorf("rule %s: peer %q: IPv4 only (iptables)", r.ID, p)
		}
		peers = append(peers, pfx.Masked().String())
	}
	slices.Sort(peers)
	r.Peers = slices.Compact(peers)
	return r, nil
}

// chain is the rule's own iptables chain. The name hashes the whole
// rule, not just its id: a rule changed under the same id gets a new
// chain, filled before the old one is unhooked, so a change never opens
// a gap, and what a chain does can be told from its name alone (an
// agent adopting rules after a restart compares names, not contents).
// iptables allows 28 characters.
func (r Rule) chain() string {
	b, _ := json.Marshal(r)
	id := sha256.Sum256([]byte(r.ID))
	all := sha256.Sum256(b)
	return chainPrefix + hex.EncodeToString(id[:4]) + "-" + hex.EncodeToString(all[:4])
}

// parseRules reads a desired state, validating every rule; ids are
// unique.
func parseRules(data string) ([]Rule, error) {
	if data == "" {
		return nil, nil
	}
	var rules []Rule
	if err := json.Unmarshal([]byte(data), &rules); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	seen := map[string]bool{}
	for i, r := range rules {
		n, err := r.Validate()
		if err != nil {
			return nil, err
		}
		if seen[n.ID] {
			return nil, fmt.Errorf("rule id %q twice", n.ID)
		}
		seen[n.ID] = true
		rules[i] = n
	}
	return rules, nil
}

// Status is what an agent reports.
type Status struct {
	// Generation is the desired state's generation the agent applied
	// (GenerationAnnotation), or tried to when Error is set.
	Generation int64 `json:"generation"`
	// Applied are the ids of the rules in place, sorted.
	Applied []string `json:"applied"`
	// Expired are the ids of desired rules the agent lifted because
	// their expiry time passed, sorted.
	Expired []string `json:"expired,omitempty"`
	// Error is why the last reconcile failed ("" when it did not).
	Error string `json:"error,omitempty"`
	// Time is when the agent wrote this status.
	Time time.Time `json:"time"`
	// Agent is the agent's pod (or host) name.
	Agent string `json:"agent,omitempty"`
}
