package apitest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Version is one object as a snapshot saw it: any change to it moves its
// resourceVersion, and deleting and re-creating it changes its UID.
type Version struct{ UID, ResourceVersion string }

// Snapshot is every object of every resource that can be listed, keyed
// GROUP/RESOURCE NAMESPACE/NAME.
type Snapshot map[string]Version

// Keys are the snapshot's objects, sorted.
func (s Snapshot) Keys() []string { return slices.Sorted(maps.Keys(s)) }

// Diff lists what differs between two snapshots, one line an object
// ("" when nothing does).
func (s Snapshot) Diff(after Snapshot) string {
	var out []string
	for _, k := range s.Keys() {
		a, ok := after[k]
		switch {
		case !ok:
			out = append(out, "deleted "+k)
		case a != s[k]:
			out = append(out, fmt.Sprintf("changed %s: %v -> %v", k, s[k], a))
		}
	}
	for _, k := range after.Keys() {
		if _, ok := s[k]; !ok {
			out = append(out, "created "+k)
		}
	}
	return strings.Join(out, "\n")
}

// apiserverIdentity labels the leases the API server renews every few
// seconds on its own (its identity heartbeat): the one change a snapshot
// cannot hold still, and no client's.
const apiserverIdentity = "apiserver.kubernetes.io/identity"

// TakeSnapshot lists every object of every resource the server's
// discovery offers with the list verb, cluster-wide and in every
// namespace, except the API server's own heartbeat leases.
func TakeSnapshot(tb testing.TB, cfg *rest.Config) Snapshot {
	tb.Helper()
	cfg = rest.CopyConfig(cfg)
	// deprecated kinds (v1 Endpoints, ComponentStatus) are listed too:
	// the server's warnings about them are not the test's
	cfg.WarningHandler = rest.NoWarnings{}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		tb.Fatalf("discovery: %v", err)
	}
	s := Snapshot{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			list, err := dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{LabelSelector: "!" + apiserverIdentity})
			if err != nil {
				tb.Fatalf("listing %s: %v", gvr, err)
			}
			for _, u := range list.Items {
				key := fmt.Sprintf("%s %s/%s", gvr.GroupResource(), u.GetNamespace(), u.GetName())
				s[key] = Version{UID: string(u.GetUID()), ResourceVersion: u.GetResourceVersion()}
			}
		}
	}
	return s
}

// StableSnapshot is TakeSnapshot once the server has finished making its
// own objects (default namespaces, RBAC roles, priority classes, the
// kubernetes Service): that Service exists, and two snapshots a second
// apart are the same. A test that compares before and after starts from
// it, so that what the server does by itself after /readyz is not taken
// for the test's doing (measured under load: /readyz answered, then the
// bootstrap roles came 8 s later, the kubernetes Service last).
func StableSnapshot(tb testing.TB, cfg *rest.Config) Snapshot {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	last := TakeSnapshot(tb, cfg)
	for {
		time.Sleep(time.Second)
		now := TakeSnapshot(tb, cfg)
		diff := last.Diff(now)
		_, bootstrapped := now[kubernetesService]
		if diff == "" && bootstrapped {
			return now
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the server's objects still change after two minutes (kubernetes Service made: %t):\n%s", bootstrapped, diff)
		}
		last = now
	}
}

// kubernetesService is the last object the API server's bootstrap makes.
const kubernetesService = "services default/kubernetes"
