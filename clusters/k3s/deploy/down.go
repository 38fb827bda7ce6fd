package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Teardown is what down removes of the scenario's deployed services
// before the rest of its objects: the members' pods, then their files on
// the nodes (through the agents, which go after).
type Teardown struct {
	// Pods are the members' pods deleted.
	Pods []string
	// Wiped are the nodes whose copy of Root(scenario) was removed.
	Wiped []string
	// Stranded are the nodes with no agent running to remove it.
	Stranded []string
}

// memberSelector selects every member pod of the scenario (its
// one-shot commands' too).
func memberSelector(scenario string) (string, error) {
	return selector(scenario, componentLabel+"="+ComponentMember)
}

// Down stops the scenario's members (their pods deleted, each waited
// for), then removes Root(scenario) from every node an agent of the
// scenario runs on. A node a member ran on with no agent running keeps
// its files (Stranded).
func Down(ctx context.Context, c *k3s.Cluster, scenario string) (Teardown, error) {
	var t Teardown
	sel, err := memberSelector(scenario)
	if err != nil {
		return t, err
	}
	list, err := c.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return t, fmt.Errorf("k3s: listing the members' pods: %w", err)
	}
	p := &Pods{Cluster: c, Scenario: scenario}
	var errs []error
	ran := map[string]bool{}
	for _, pod := range list.Items {
		if pod.Spec.NodeName != "" {
			ran[pod.Spec.NodeName] = true
		}
		if err := p.remove(ctx, pod.Name, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", pod.Name, err))
			continue
		}
		t.Pods = append(t.Pods, pod.Name)
	}
	if len(errs) > 0 {
		return t, errors.Join(errs...) // files under a member that still runs stay
	}
	running, err := (&agent.Client{Kube: c.Client, Scenario: scenario}).RunningAgents(ctx)
	if err != nil {
		return t, err
	}
	for node := range ran {
		if !running[node] {
			t.Stranded = append(t.Stranded, node)
		}
	}
	f := NodeFiles{Cluster: c, Scenario: scenario}
	for node := range running {
		// the member is a stand-in for the node: NodeFiles reaches a
		// member's node through its agent
		on := engines.Member{Name: "files", Node: node}
		if _, _, err := f.exec(ctx, on, nil, "rm", "-rf", "--", Root(scenario)); err != nil {
			errs = append(errs, err)
			continue
		}
		t.Wiped = append(t.Wiped, node)
	}
	slices.Sort(t.Wiped)
	slices.Sort(t.Stranded)
	return t, errors.Join(errs...)
}
