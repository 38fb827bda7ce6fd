package k3s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
)

// OwnedObject is one object chaosloop created for a scenario.
type OwnedObject struct {
	Kind       string    `json:"kind"`
	APIVersion string    `json:"apiVersion"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid"`

	gvr    schema.GroupVersionResource
	labels map[string]string
}

// GVR is the object's resource.
func (o OwnedObject) GVR() schema.GroupVersionResource { return o.gvr }

func (o OwnedObject) String() string {
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
}

// Teardown is what `down` removes: the scenario's objects (in chaosloop's
// namespace, with both labels) and, when it would then hold nothing else,
// the namespace itself. Node labels are never part of it: `label` owns
// them, and other scenarios' runs may rely on them.
type Teardown struct {
	Context   string        `json:"context"`
	Scenario  string        `json:"scenario"`
	Namespace string        `json:"namespace"`
	Objects   []OwnedObject `json:"objects"`
	// DeleteNamespace: the namespace is chaosloop's (labelled) and holds
	// nothing but Objects; otherwise KeepNamespace says why it stays.
	DeleteNamespace bool   `json:"deleteNamespace"`
	KeepNamespace   string `json:"keepNamespace,omitempty"`
	// Deleted: the teardown was carried out.
	Deleted bool `json:"deleted"`

	nsUID types.UID
}

// resources are the namespaced kinds that can be listed and deleted, as
// the API server's discovery says; partial is set when some API group
// could not be read (an aggregated API that is down): objects of its
// kinds are not seen, so the namespace is then not deleted.
func resources(c *Cluster) (res []metav1.APIResource, partial error, err error) {
	lists, err := c.Client.Discovery().ServerPreferredNamespacedResources()
	if err != nil {
		if !discovery.IsGroupDiscoveryFailedError(err) {
			return nil, nil, fmt.Errorf("discovering the cluster's resources: %w", err)
		}
		partial = err
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			r.Group, r.Version = gv.Group, gv.Version
			res = append(res, r)
		}
	}
	return res, partial, nil
}

// listIn lists every object of every resource in the namespace, with
// each one's owners.
func listIn(ctx context.Context, c *Cluster, res []metav1.APIResource) ([]OwnedObject, map[types.UID][]metav1.OwnerReference, error) {
	if c.Dynamic == nil {
		return nil, nil, errors.New("k3s: no dynamic client")
	}
	var out []OwnedObject
	owners := map[types.UID][]metav1.OwnerReference{}
	seen := map[types.UID]bool{}
	for _, r := range res {
		gvr := schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Name}
		list, err := c.Dynamic.Resource(gvr).Namespace(Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("listing %s in namespace %s: %w", gvr.GroupResource(), Namespace, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			// the same object is served under two groups (events)
			if seen[u.GetUID()] || u.GetDeletionTimestamp() != nil {
				continue
			}
			seen[u.GetUID()] = true
			out = append(out, owned(u, gvr, r.Kind))
			owners[u.GetUID()] = u.GetOwnerReferences()
		}
	}
	slices.SortFunc(out, func(a, b OwnedObject) int {
		return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name)
	})
	return out, owners, nil
}

func owned(u *unstructured.Unstructured, gvr schema.GroupVersionResource, kind string) OwnedObject {
	return OwnedObject{Kind: kind, APIVersion: gvr.GroupVersion().String(), Namespace: u.GetNamespace(), Name: u.GetName(), UID: u.GetUID(), gvr: gvr, labels: u.GetLabels()}
}

// PlanDown lists the scenario's objects and decides the namespace's fate.
// It only reads.
func PlanDown(ctx context.Context, log *slog.Logger, c *Cluster, scenario string) (*Teardown, error) {
	if _, err := OwnedLabels(scenario); err != nil {
		return nil, err
	}
	t := &Teardown{Context: c.Context, Scenario: scenario, Namespace: Namespace, Objects: []OwnedObject{}}
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		t.KeepNamespace = "there is none"
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("reading namespace %s: %w", Namespace, err)
	}
	t.nsUID = ns.UID
	res, partial, err := resources(c)
	if err != nil {
		return nil, err
	}
	// one list a resource serves both the selection and the namespace's
	// fate; only objects with both labels are ever selected
	all, owners, err := listIn(ctx, c, res)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.labels[LabelManagedBy] == ManagedBy && o.labels[LabelScenario] == scenario {
			t.Objects = append(t.Objects, o)
		}
	}
	log.Info("k3s: down", "context", c.Context, "scenario", scenario, "objects", len(t.Objects))
	t.KeepNamespace = keepNamespace(ns.Labels, partial, all, owners, t.Objects)
	t.DeleteNamespace = t.KeepNamespace == ""
	return t, nil
}

// keepNamespace says why the namespace must stay ("" when it may go): it
// is not chaosloop's, or holds anything but gone (being deleted, or to be
// deleted, or owned by one of those) and what Kubernetes puts in every
// namespace.
func keepNamespace(labels map[string]string, partial error, all []OwnedObject, owners map[types.UID][]metav1.OwnerReference, gone []OwnedObject) string {
	if labels[LabelManagedBy] != ManagedBy {
		return fmt.Sprintf("it is not labelled %s=%s: chaosloop did not create it", LabelManagedBy, ManagedBy)
	}
	if partial != nil {
		return fmt.Sprintf("some of the cluster's APIs could not be listed (%v): what the namespace holds is not known", partial)
	}
	goneUID := map[types.UID]bool{}
	for _, o := range gone {
		goneUID[o.UID] = true
	}
	var others []string
	for _, o := range all {
		if goneUID[o.UID] || isDefault(o) || slices.ContainsFunc(owners[o.UID], func(r metav1.OwnerReference) bool { return goneUID[r.UID] }) {
			continue
		}
		others = append(others, o.Kind+"/"+o.Name)
	}
	if len(others) == 0 {
		return ""
	}
	shown := others[:min(len(others), 5)]
	more := ""
	if len(others) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(others)-len(shown))
	}
	return fmt.Sprintf("it holds objects that are not this scenario's: %s%s", strings.Join(shown, ", "), more)
}

// isDefault is what Kubernetes itself puts in every namespace (and events
// about anything): not a reason to keep the namespace.
func isDefault(o OwnedObject) bool {
	switch {
	case o.Kind == "ConfigMap" && o.Name == "kube-root-ca.crt",
		o.Kind == "ServiceAccount" && o.Name == "default",
		o.Kind == "Event":
		return true
	}
	return false
}

// Apply deletes the teardown's objects, each only while it is still the
// object listed (a UID precondition: one deleted and re-created meanwhile
// by someone else is left), then the namespace if it still holds nothing
// else.
func (t *Teardown) Apply(ctx context.Context, log *slog.Logger, c *Cluster) error {
	bg := metav1.DeletePropagationBackground
	var errs []error
	for _, o := range t.Objects {
		err := c.Dynamic.Resource(o.gvr).Namespace(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &o.UID}, PropagationPolicy: &bg})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("deleting %s: %w", o, err))
		default:
			log.Info("k3s: deleted", "context", t.Context, "object", o.String())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	t.Deleted = true
	if !t.DeleteNamespace {
		return nil
	}
	// again, now: something may have been put in it since PlanDown
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, Namespace, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", Namespace, err)
	}
	res, partial, err := resources(c)
	if err != nil {
		return err
	}
	all, owners, err := listIn(ctx, c, res)
	if err != nil {
		return err
	}
	if t.KeepNamespace = keepNamespace(ns.Labels, partial, all, owners, t.Objects); t.KeepNamespace != "" {
		t.DeleteNamespace = false
		return nil
	}
	err = c.Client.CoreV1().Namespaces().Delete(ctx, Namespace, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &t.nsUID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting namespace %s: %w", Namespace, err)
	}
	log.Info("k3s: deleted", "context", t.Context, "namespace", Namespace)
	return nil
}

// WriteText prints the teardown kubectl-style.
func (t *Teardown) WriteText(w io.Writer) {
	verb := "would delete"
	if t.Deleted {
		verb = "deleted"
	}
	fmt.Fprintf(w, "context %s: scenario %s: %d object(s) in namespace %s labelled %s=%s,%s=%s\n",
		t.Context, t.Scenario, len(t.Objects), t.Namespace, LabelManagedBy, ManagedBy, LabelScenario, t.Scenario)
	for _, o := range t.Objects {
		fmt.Fprintf(w, "%s %s\n", verb, o)
	}
	if t.DeleteNamespace {
		fmt.Fprintf(w, "%s namespace %s (chaosloop's, and holding nothing else)\n", verb, t.Namespace)
	} else {
		fmt.Fprintf(w, "keeping namespace %s: %s\n", t.Namespace, t.KeepNamespace)
	}
	fmt.Fprintln(w, "node labels are left as they are: `chaosloop label` owns them")
}
