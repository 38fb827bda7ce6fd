package k3s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/topology"
)

// Op is what a label change does.
type Op string

const (
	Add    Op = "add"
	Modify Op = "modify"
	// Remove is only ever of a key under chaosloop's prefixes that the
	// scenario no longer gives the node (a pool, feed or switch dropped).
	Remove Op = "remove"
)

// Change is one label of one node.
type Change struct {
	Op   Op     `json:"op"`
	Key  string `json:"key"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func (c Change) describe() string {
	switch c.Op {
	case Add:
		return fmt.Sprintf("label %s missing (want %q)", c.Key, c.To)
	case Modify:
		return fmt.Sprintf("label %s is %q, want %q", c.Key, c.From, c.To)
	}
	return fmt.Sprintf("label %s=%s is not the scenario's (stale)", c.Key, c.From)
}

// Action is one thing chaosloop would do to the cluster, kubectl-style:
// a verb on an object. Labelling a node is the only one yet.
type Action struct {
	Verb string `json:"verb"`
	// Object is KIND/NAME ("node/worker-07").
	Object string `json:"object"`
	// Node is the scenario node the object stands for.
	Node    string   `json:"node,omitempty"`
	Changes []Change `json:"changes,omitempty"`
}

// Plan is every action a command would take, in order; it is computed
// without changing anything.
type Plan struct {
	Context string   `json:"context"`
	Actions []Action `json:"actions"`
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Actions) == 0 }

// labelAction is the label action that makes a cluster node carry its
// scenario node's labels, nil when it already does. Only chaosloop's
// keys and the two topology keys are ever compared: every other label is
// the adopter's.
func labelAction(n *topology.Node, cn *corev1.Node) *Action {
	want := nodelabels.For(n)
	var changes []Change
	for _, k := range slices.Sorted(maps.Keys(want)) {
		have, ok := cn.Labels[k]
		switch {
		case !ok:
			changes = append(changes, Change{Op: Add, Key: k, To: want[k]})
		case have != want[k]:
			changes = append(changes, Change{Op: Modify, Key: k, From: have, To: want[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cn.Labels)) {
		if _, wanted := want[k]; !wanted && nodelabels.Removable(k) {
			changes = append(changes, Change{Op: Remove, Key: k, From: cn.Labels[k]})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return &Action{Verb: "label", Object: "node/" + cn.Name, Node: n.Name, Changes: changes}
}

// WriteText prints the plan as a diff a node at a time: + added, ~
// changed (with the old value), - removed.
func (p *Plan) WriteText(w io.Writer) {
	if p.Empty() {
		fmt.Fprintf(w, "context %s: no label to change\n", p.Context)
		return
	}
	n := 0
	for _, a := range p.Actions {
		n += len(a.Changes)
	}
	fmt.Fprintf(w, "context %s: %d label change(s) on %d node(s)\n", p.Context, n, len(p.Actions))
	for _, a := range p.Actions {
		fmt.Fprintf(w, "%s %s", a.Verb, a.Object)
		if "node/"+a.Node != a.Object {
			fmt.Fprintf(w, " (scenario node %s)", a.Node)
		}
		fmt.Fprintln(w)
		for _, c := range a.Changes {
			switch c.Op {
			case Add:
				fmt.Fprintf(w, "  + %s=%s\n", c.Key, c.To)
			case Modify:
				fmt.Fprintf(w, "  ~ %s=%s (was %s)\n", c.Key, c.To, c.From)
			case Remove:
				fmt.Fprintf(w, "  - %s (was %s)\n", c.Key, c.From)
			}
		}
	}
}

// Apply carries the plan's label actions out, one strategic-merge patch a
// node naming only the keys that change, so that labels set meanwhile by
// anyone else are kept. It stops at the first node that fails; running it
// again (after a new Check) finishes the rest.
func Apply(ctx context.Context, log *slog.Logger, c *Cluster, p *Plan) error {
	for _, a := range p.Actions {
		name, ok := strings.CutPrefix(a.Object, "node/")
		if a.Verb != "label" || !ok {
			return fmt.Errorf("k3s: cannot apply %s %s", a.Verb, a.Object)
		}
		patch, err := labelPatch(a.Changes)
		if err != nil {
			return err
		}
		if _, err := c.Client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("labelling node %s: %w", name, err)
		}
		log.Info("k3s: node labelled", "context", c.Context, "node", name, "changes", len(a.Changes))
	}
	return nil
}

// FieldManager is who the API server records as having set chaosloop's
// fields.
const FieldManager = "chaosloop"

// labelPatch is {"metadata":{"labels":{...}}} with a null for a removed
// key, as a merge patch removes one.
func labelPatch(changes []Change) ([]byte, error) {
	labels := map[string]*string{}
	for _, c := range changes {
		if c.Op == Remove {
			labels[c.Key] = nil
			continue
		}
		labels[c.Key] = &c.To
	}
	return json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
}
