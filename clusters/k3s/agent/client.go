package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/chaosloop/chaosloop/clusters/k3s"
)

// Client edits nodes' desired states: what the chaosloop CLI uses to
// inject and recover faults. Every method is idempotent.
type Client struct {
	Kube kubernetes.Interface
	Log  *slog.Logger
	// Scenario is the scenario the faults are the faults of: the desired
	// states it creates carry its owned labels (down removes them), and
	// RecoverAll recovers only its desired states.
	Scenario string
}

// Inject puts r on node, replacing a rule with the same id. It returns the
// desired state's generation that holds r: the agent has applied r once
// Applied reports that generation (WaitApplied).
func (c *Client) Inject(ctx context.Context, node string, r Rule) (int64, error) {
	r, err := r.Validate()
	if err != nil {
		return 0, err
	}
	return c.edit(ctx, node, func(rules []Rule) []Rule {
		i := slices.IndexFunc(rules, func(o Rule) bool { return o.ID == r.ID })
		if i < 0 {
			return append(rules, r)
		}
		rules[i] = r
		return rules
	})
}

// Recover removes rule id from node (nothing to do if it is not there),
// returning the generation without it.
func (c *Client) Recover(ctx context.Context, node, id string) (int64, error) {
	return c.edit(ctx, node, func(rules []Rule) []Rule {
		return slices.DeleteFunc(rules, func(o Rule) bool { return o.ID == id })
	})
}

// RecoverAll removes every rule from every node, returning each node's
// generation without them.
func (c *Client) RecoverAll(ctx context.Context) (map[string]int64, error) {
	list, err := c.desiredStates(ctx)
	if err != nil {
		return nil, err
	}
	gens := map[string]int64{}
	var errs []error
	for _, cm := range list {
		node := cm.Labels[NodeLabel]
		if node == "" {
			continue
		}
		g, err := c.edit(ctx, node, func([]Rule) []Rule { return nil })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gens[node] = g
	}
	return gens, errors.Join(errs...)
}

// NodesWith returns the nodes whose desired state has rule id, sorted.
func (c *Client) NodesWith(ctx context.Context, id string) ([]string, error) {
	list, err := c.desiredStates(ctx)
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, cm := range list {
		rules, err := parseRules(cm.Data[RulesKey])
		if err != nil {
			return nil, fmt.Errorf("agent: desired state %s: %w", cm.Name, err)
		}
		if node := cm.Labels[NodeLabel]; node != "" && slices.ContainsFunc(rules, func(r Rule) bool { return r.ID == id }) {
			nodes = append(nodes, node)
		}
	}
	slices.Sort(nodes)
	return nodes, nil
}

// desiredStates lists the scenario's desired states.
func (c *Client) desiredStates(ctx context.Context) ([]corev1.ConfigMap, error) {
	owned, err := k3s.OwnedLabels(c.Scenario)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	owned[ComponentLabel] = ComponentFaults
	list, err := c.Kube.CoreV1().ConfigMaps(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set(owned).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("agent: listing desired states: %w", err)
	}
	return list.Items, nil
}

// editBackoff spaces retries after a conflict. client-go's DefaultRetry
// (5 tries in ~50 ms) loses to a handful of concurrent writers (a
// scenario injecting on many links of one node at once); with jitter and
// more tries each round lets at least one writer through.
func editBackoff() wait.Backoff {
	return wait.Backoff{Steps: 16, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: time.Second}
}

// Rules returns node's desired rules and generation.
func (c *Client) Rules(ctx context.Context, node string) ([]Rule, int64, error) {
	cm, err := c.Kube.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMapName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("agent: desired state of %s: %w", node, err)
	}
	rules, err := parseRules(cm.Data[RulesKey])
	return rules, generation(cm), err
}

// edit applies change to node's rules, creating the desired state if need
// be, retrying on conflicts. An edit that changes nothing writes nothing.
func (c *Client) edit(ctx context.Context, node string, change func([]Rule) []Rule) (int64, error) {
	owned, err := k3s.OwnedLabels(c.Scenario)
	if err != nil {
		return 0, fmt.Errorf("agent: %w", err)
	}
	var gen int64
	cms := c.Kube.CoreV1().ConfigMaps(Namespace)
	err = retry.OnError(editBackoff(), func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		cm, err := cms.Get(ctx, ConfigMapName(node), metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		if create {
			lbl := labels.Set{ComponentLabel: ComponentFaults, NodeLabel: node}
			maps.Copy(lbl, owned)
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName(node), Namespace: Namespace, Labels: lbl}}
		}
		old, err := parseRules(cm.Data[RulesKey])
		if err != nil {
			return fmt.Errorf("%s/%s: %w", Namespace, cm.Name, err)
		}
		want := change(slices.Clone(old))
		gen = generation(cm)
		if !create && slices.EqualFunc(old, want, sameRule) {
			return nil
		}
		if want == nil {
			want = []Rule{}
		}
		b, err := json.Marshal(want)
		if err != nil {
			return err
		}
		gen++
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[GenerationAnnotation] = strconv.FormatInt(gen, 10)
		cm.Data = map[string]string{RulesKey: string(b)}
		if create {
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
		} else {
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("agent: desired state of %s: %w", node, err)
	}
	c.log().Debug("agent: desired state", "node", node, "generation", gen)
	return gen, nil
}

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func sameRule(a, b Rule) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func generation(cm *corev1.ConfigMap) int64 {
	g, _ := strconv.ParseInt(cm.Annotations[GenerationAnnotation], 10, 64)
	return g
}

// Applied returns what node's agent last reported; a zero Status when it
// has reported nothing yet.
func (c *Client) Applied(ctx context.Context, node string) (Status, error) {
	cm, err := c.Kube.CoreV1().ConfigMaps(Namespace).Get(ctx, StatusName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("agent: status of %s: %w", node, err)
	}
	var s Status
	if err := json.Unmarshal([]byte(cm.Data[StatusKey]), &s); err != nil {
		return Status{}, fmt.Errorf("agent: status of %s: %w", node, err)
	}
	return s, nil
}

// WaitApplied polls until node's agent reports generation gen (or a later
// one) applied without error, and returns that status.
func (c *Client) WaitApplied(ctx context.Context, node string, gen int64) (Status, error) {
	var last Status
	for {
		s, err := c.Applied(ctx, node)
		if err == nil {
			last = s
			if s.Generation >= gen && s.Error == "" {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("agent on %s: generation %d not applied (last report: generation %d, applied %v, error %q): %w",
				node, gen, last.Generation, last.Applied, last.Error, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Recovery is what RecoverBeforeDown did.
type Recovery struct {
	// Recovered are the nodes whose agent applied their empty desired
	// state: no rule of the scenario is left there.
	Recovered []string
	// Stranded are nodes with a desired state but no running agent: any
	// rule an agent applied there before stays until an agent runs again
	// (or `chaosloop internal agent --cleanup` is run on the node).
	Stranded []string
}

// RecoverBeforeDown empties every desired state of the scenario and waits,
// up to wait, for each node's running agent to report it applied: what
// down must do before it deletes the agent, which would otherwise leave
// its rules in place (an agent that stops keeps them). A running agent
// that does not report in time is an error: deleting it then could strand
// a cut node.
func (c *Client) RecoverBeforeDown(ctx context.Context, wait time.Duration) (Recovery, error) {
	var r Recovery
	gens, err := c.RecoverAll(ctx)
	if err != nil {
		return r, err
	}
	running, err := c.RunningAgents(ctx)
	if err != nil {
		return r, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var errs []error
	for _, node := range slices.Sorted(maps.Keys(gens)) {
		if !running[node] {
			r.Stranded = append(r.Stranded, node)
			continue
		}
		if _, err := c.WaitApplied(wctx, node, gens[node]); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Recovered = append(r.Recovered, node)
	}
	return r, errors.Join(errs...)
}

// PodOn names the scenario's agent pod running on a cluster node.
func (c *Client) PodOn(ctx context.Context, node string) (string, error) {
	pods, err := c.agentPods(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range pods {
		if p.Spec.NodeName == node {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("agent: none runs on node %s", node)
}

// RunningAgents are the nodes where an agent pod of the scenario runs.
func (c *Client) RunningAgents(ctx context.Context) (map[string]bool, error) {
	pods, err := c.agentPods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range pods {
		out[p.Spec.NodeName] = true
	}
	return out, nil
}

// agentPods are the scenario's agent pods that run.
func (c *Client) agentPods(ctx context.Context) ([]corev1.Pod, error) {
	owned, err := k3s.OwnedLabels(c.Scenario)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	owned[ComponentLabel] = ComponentAgent
	pods, err := c.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set(owned).String()})
	if err != nil {
		return nil, fmt.Errorf("agent: listing the agents: %w", err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Image is the image the scenario's agents run: the chaosloop binary in it
// also runs the workers of a run on the cluster (deploy.WorkerBinary).
func (c *Client) Image(ctx context.Context) (string, error) {
	pods, err := c.agentPods(ctx)
	if err != nil {
		return "", err
	}
	for _, p := range pods {
		for _, ct := range p.Spec.Containers {
			if ct.Name == "agent" {
				return ct.Image, nil
			}
		}
	}
	return "", fmt.Errorf("agent: none of scenario %s runs (chaosloop up FILE --on k3s deploys them)", c.Scenario)
}
