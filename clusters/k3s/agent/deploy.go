package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
)

// ForeignError is an object of the agent's name that chaosloop did not
// make for this scenario: Deploy leaves it, and says whose it is.
type ForeignError struct {
	Kind, Name string
	// Scenario is the scenario whose agent it is, "" when it is not
	// chaosloop's at all.
	Scenario string
}

func (e *ForeignError) Error() string {
	if e.Scenario != "" {
		return fmt.Sprintf("%s %s/%s is the agent of scenario %s: one scenario's agent runs on a cluster at a time (chaosloop down %s --on k3s first)",
			e.Kind, Namespace, e.Name, e.Scenario, e.Scenario)
	}
	return fmt.Sprintf("%s %s/%s exists and is not chaosloop's: it is left as it is, and the agent cannot be deployed beside it", e.Kind, Namespace, e.Name)
}

// Deploy makes the agent's objects as m has them, or puts them back as m
// has them (server-side apply, field manager chaosloop): it is idempotent,
// an unchanged object is not written. The namespace is created if missing
// and never changed. An object of the same name that is not this
// scenario's agent's is a *ForeignError, before anything is written.
func Deploy(ctx context.Context, kube kubernetes.Interface, m Manifest) error {
	scenario := m.DaemonSet.Labels[k3s.LabelScenario]
	type object struct {
		kind string
		meta *metav1.ObjectMeta
		get  func() (metav1.Object, error)
		pat  func(data []byte) error
	}
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}
	sa, roles, bindings, ds := kube.CoreV1().ServiceAccounts(Namespace), kube.RbacV1().Roles(Namespace), kube.RbacV1().RoleBindings(Namespace), kube.AppsV1().DaemonSets(Namespace)
	objs := []object{
		{"ServiceAccount", &m.ServiceAccount.ObjectMeta,
			func() (metav1.Object, error) { return sa.Get(ctx, Name, metav1.GetOptions{}) },
			func(b []byte) error { _, err := sa.Patch(ctx, Name, types.ApplyPatchType, b, opts); return err }},
		{"Role", &m.Role.ObjectMeta,
			func() (metav1.Object, error) { return roles.Get(ctx, Name, metav1.GetOptions{}) },
			func(b []byte) error { _, err := roles.Patch(ctx, Name, types.ApplyPatchType, b, opts); return err }},
		{"RoleBinding", &m.RoleBinding.ObjectMeta,
			func() (metav1.Object, error) { return bindings.Get(ctx, Name, metav1.GetOptions{}) },
			func(b []byte) error { _, err := bindings.Patch(ctx, Name, types.ApplyPatchType, b, opts); return err }},
		{"DaemonSet", &m.DaemonSet.ObjectMeta,
			func() (metav1.Object, error) { return ds.Get(ctx, Name, metav1.GetOptions{}) },
			func(b []byte) error { _, err := ds.Patch(ctx, Name, types.ApplyPatchType, b, opts); return err }},
	}
	for _, o := range objs {
		got, err := o.get()
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("agent: reading %s %s/%s: %w", o.kind, Namespace, Name, err)
		}
		l := got.GetLabels()
		if l[k3s.LabelManagedBy] != k3s.ManagedBy {
			return &ForeignError{Kind: o.kind, Name: Name}
		}
		if l[k3s.LabelScenario] != scenario {
			return &ForeignError{Kind: o.kind, Name: Name, Scenario: l[k3s.LabelScenario]}
		}
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, m.Namespace, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("agent: namespace %s: %w", Namespace, err)
	}
	manifest := []any{m.ServiceAccount, m.Role, m.RoleBinding, m.DaemonSet}
	for i, o := range objs {
		b, err := json.Marshal(manifest[i])
		if err != nil {
			return err
		}
		if err := o.pat(b); err != nil {
			return fmt.Errorf("agent: applying %s %s/%s: %w", o.kind, Namespace, Name, err)
		}
	}
	return nil
}

// WaitRunning waits until an agent of the client's scenario runs on every
// one of nodes, telling progress (when set) of each node that starts; the
// error names the nodes without one when wait has passed.
func (c *Client) WaitRunning(parent context.Context, nodes []string, wait time.Duration, progress func(node string)) error {
	ctx, cancel := context.WithTimeout(parent, wait)
	defer cancel()
	told := map[string]bool{}
	for {
		running, err := c.RunningAgents(ctx)
		if err == nil {
			for _, n := range nodes {
				if running[n] && !told[n] {
					told[n] = true
					if progress != nil {
						progress(n)
					}
				}
			}
			if len(told) == len(nodes) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			missing := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return told[n] })
			why := ""
			if err != nil {
				why = fmt.Sprintf(" (last look: %v)", err)
			}
			return fmt.Errorf("agent: after %s no agent runs on node(s) %s%s: kubectl -n %s describe daemonset %s says why (an image the nodes cannot pull, a taint)",
				wait, strings.Join(missing, ", "), why, Namespace, Name)
		case <-time.After(time.Second):
		}
	}
}
