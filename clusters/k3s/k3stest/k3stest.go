// Package k3stest checks `--on k3s`'s promises against a real cluster
// chaosloop did not make: that a context must be named, that plan only
// reads, that label changes only chaosloop's node labels (and is
// idempotent), and that down deletes only the scenario's own objects.
// The kind backend's test runs it on a kind cluster through the
// kubeconfig on the host; the k3s package's on $CHAOSLOOP_K3S_KUBECONFIG.
package k3stest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/nodelabels"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Scenario names the objects the checks create for their scenario; any
// left by a killed run are deleted first.
const Scenario = "k3stest-real"

// RealCluster runs every check against the cluster of kubeconfig's
// context, which must be the file's current context (so that refusing
// it unnamed means something). It changes the nodes' chaosloop labels
// (put back afterwards) and creates and deletes objects of its own
// scenario; run it on a test cluster.
func RealCluster(t *testing.T, kubeconfig, contextName string) {
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	require.NoError(t, err)
	require.Equal(t, contextName, raw.CurrentContext, "the context is the kubeconfig's current one")
	t.Run("UnnamedContextRefused", func(t *testing.T) {
		_, err := k3s.Connect(quiet(), k3s.Access{Kubeconfig: kubeconfig})
		require.True(t, k3s.IsContextError(err), "an unnamed context is refused: %v", err)
		require.ErrorContains(t, err, fmt.Sprintf("the kubeconfig's current context, %q, is not used unless named", contextName))
	})
	t.Run("PlanOnlyReads", func(t *testing.T) { planOnlyReads(t, kubeconfig, contextName) })
	t.Run("LabelRoundTrip", func(t *testing.T) { LabelRoundTrip(t, kubeconfig, contextName) })
	t.Run("DownOnlyOwned", func(t *testing.T) { downOnlyOwned(t, kubeconfig, contextName) })
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func connect(t *testing.T, kubeconfig, contextName string) *k3s.Cluster {
	t.Helper()
	c, err := k3s.Connect(quiet(), k3s.Access{Kubeconfig: kubeconfig, Context: contextName})
	require.NoError(t, err)
	return c
}

// restConfig is the context's client config.
func restConfig(t *testing.T, kubeconfig, contextName string) *rest.Config {
	t.Helper()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: contextName}).ClientConfig()
	require.NoError(t, err)
	return rc
}

// requests records the method and path of every request a client sends.
type requests struct {
	mu   sync.Mutex
	sent []string
}

func (r *requests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		r.mu.Lock()
		r.sent = append(r.sent, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// planOnlyReads computes a run plan with an isolate and a latency fault
// through a client that records every request: each is a GET. The plan
// names the agent's objects for every node.
func planOnlyReads(t *testing.T, kubeconfig, contextName string) {
	rc := restConfig(t, kubeconfig, contextName)
	rec := &requests{}
	rc.WrapTransport = rec.wrap
	c, err := k3s.NewCluster(quiet(), rc, contextName)
	require.NoError(t, err)
	nodes := clusterNodes(t.Context(), t, connect(t, kubeconfig, contextName))
	topo, m := scenarioOf(t, nodes, "faults:\n  - {at: 1s, action: isolate, target: rack/it/r0, for: 5s}\n  - {at: 10s, action: latency, target: node/n0, delay: 50ms, for: 5s}\n")
	p, err := k3s.PlanRun(t.Context(), quiet(), c, k3s.RunPlanInput{Topology: topo, NodeMap: m, Seed: 1})
	require.NoError(t, err)
	require.Len(t, p.Faults, 2)
	for _, f := range p.Faults {
		require.Equal(t, k3s.MechanismAgent, f.Steps[0].Mechanism, "%+v", f)
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		require.True(t, slices.ContainsFunc(p.Objects, func(o k3s.Object) bool { return o.Name == k3s.AgentConfigMap(n) }), "the plan names %s's rules", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.NotEmpty(t, rec.sent)
	for _, r := range rec.sent {
		require.True(t, strings.HasPrefix(r, "GET "), "plan sent %s", r)
	}
	t.Logf("plan of %d nodes: %d requests, every one a GET: %v", len(nodes), len(rec.sent), rec.sent)
}

// LabelRoundTrip checks (validate's), labels (label's) and checks again
// the cluster against a scenario of as many nodes as it has, one rack
// each, mapped onto them by a node map (a real cluster's node names need
// not be DNS-1123 labels): every node Ready, no error, nothing changed by
// the check; then no drift and nothing left to change. The adopter's
// labels are untouched, and each node's chaosloop keys are put back as
// they were afterwards.
func LabelRoundTrip(t *testing.T, kubeconfig, contextName string) {
	ctx := t.Context()
	c := connect(t, kubeconfig, contextName)
	before := clusterNodes(ctx, t, c)
	t.Cleanup(func() { restoreLabels(t, c, before) })
	topo, m := scenarioOf(t, before, "")
	r, err := k3s.Check(ctx, quiet(), c, topo, m)
	require.NoError(t, err)
	require.Zero(t, r.Count(k3s.Error), "%v", r.Findings)
	require.Equal(t, before, clusterNodes(ctx, t, c), "Check changes nothing")
	require.NoError(t, k3s.Apply(ctx, quiet(), c, r.Plan))

	after := clusterNodes(ctx, t, c)
	for name, was := range before {
		for k, v := range was {
			if !nodelabels.Owned(k) {
				require.Equal(t, v, after[name][k], "node %s: the adopter's label %s is kept", name, k)
			}
		}
		for k, v := range nodelabels.For(topo.Node(scenarioNode(m, name))) {
			require.Equal(t, v, after[name][k], "node %s: %s", name, k)
		}
	}
	again, err := k3s.Check(ctx, quiet(), c, topo, m)
	require.NoError(t, err)
	require.Zero(t, again.Count(k3s.Drift), "%v", again.Findings)
	require.True(t, again.Plan.Empty())
}

// clusterNodes are the cluster's nodes' labels, by name.
func clusterNodes(ctx context.Context, t *testing.T, c *k3s.Cluster) map[string]map[string]string {
	t.Helper()
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, list.Items)
	out := map[string]map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = n.Labels
	}
	return out
}

// scenarioOf is a scenario of as many nodes as the cluster has, each its
// own rack of one site, mapped to the cluster's nodes by a node map, with
// the faults given (YAML, "" for none).
func scenarioOf(t *testing.T, nodes map[string]map[string]string, faultsYAML string) (*topology.Topology, k3s.NodeMap) {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: " + Scenario + "\nsites:\n  - name: it\n    racks:\n")
	m := k3s.NodeMap{}
	for i, name := range slices.Sorted(maps.Keys(nodes)) {
		fmt.Fprintf(&b, "      - {name: r%d, power: [pdu-%d], switches: [tor-%d], nodes: [{name: n%d, pools: [CORE-HANDLERS]}]}\n", i, i, i, i)
		m[fmt.Sprintf("n%d", i)] = name
	}
	b.WriteString("services:\n  - {name: handlers, kind: stateless, replicas: 1, pool: CORE-HANDLERS}\n")
	b.WriteString(faultsYAML)
	sc, err := scenarios.ParseBytes(t.Context(), Scenario+".yaml", []byte(b.String()))
	require.NoError(t, err, b.String())
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo, m
}

// scenarioNode is the scenario node a cluster node stands for.
func scenarioNode(m k3s.NodeMap, cluster string) string {
	for s, c := range m {
		if c == cluster {
			return s
		}
	}
	return cluster
}

// restoreLabels puts every chaosloop key of every node back as it was.
func restoreLabels(t *testing.T, c *k3s.Cluster, before map[string]map[string]string) {
	now := clusterNodes(context.Background(), t, c) // after the test's context ends
	for name, was := range before {
		labels := map[string]*string{}
		for k := range now[name] {
			if nodelabels.Owned(k) {
				labels[k] = nil
			}
		}
		for k, v := range was {
			if nodelabels.Owned(k) {
				labels[k] = &v
			}
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
		require.NoError(t, err)
		_, err = c.Client.CoreV1().Nodes().Patch(context.Background(), name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		require.NoError(t, err)
	}
}

// version is an object as it was: deleting and re-creating it changes
// its UID, any change its resourceVersion.
type version struct{ uid, rv string }

// downOnlyOwned deploys the node agent's objects for Scenario (its
// DaemonSet selecting no node: nothing runs) and a desired state of
// faults through the agent's client, beside objects that are not the
// scenario's: unlabelled, labelled managed-by only, another scenario's,
// the scenario's labels in another namespace, and whatever the namespace
// held before. down (PlanDown, Apply) deletes exactly the scenario's
// objects; every other keeps its UID and resourceVersion. The namespace
// stays while it holds anything else.
func downOnlyOwned(t *testing.T, kubeconfig, contextName string) {
	ctx := t.Context()
	c := connect(t, kubeconfig, contextName)
	cs := c.Client.(*kubernetes.Clientset)
	removeLeftovers(t, c, Scenario)

	m, err := agent.NewManifest("chaosloop-agent:absent", Scenario)
	require.NoError(t, err)
	// nothing is to run: no node has this label
	m.DaemonSet.Spec.Template.Spec.NodeSelector = map[string]string{"chaosloop.io/k3stest": "none"}
	create := metav1.CreateOptions{FieldManager: "k3stest"}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, m.Namespace, create); err != nil {
		require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	}
	_, err = cs.CoreV1().ServiceAccounts(k3s.Namespace).Create(ctx, m.ServiceAccount, create)
	require.NoError(t, err)
	_, err = cs.RbacV1().Roles(k3s.Namespace).Create(ctx, m.Role, create)
	require.NoError(t, err)
	_, err = cs.RbacV1().RoleBindings(k3s.Namespace).Create(ctx, m.RoleBinding, create)
	require.NoError(t, err)
	_, err = cs.AppsV1().DaemonSets(k3s.Namespace).Create(ctx, m.DaemonSet, create)
	require.NoError(t, err)
	node := slices.Sorted(maps.Keys(clusterNodes(ctx, t, c)))[0]
	_, err = (&agent.Client{Kube: cs, Log: quiet(), Scenario: Scenario}).Inject(ctx, node, agent.Rule{ID: "cut", Kind: agent.Isolate, Peers: []string{"198.18.0.2"}})
	require.NoError(t, err)
	ours := []string{
		"ServiceAccount " + m.ServiceAccount.Name, "Role " + m.Role.Name, "RoleBinding " + m.RoleBinding.Name,
		"DaemonSet " + m.DaemonSet.Name, "ConfigMap " + k3s.AgentConfigMap(node),
	}

	owned, err := k3s.OwnedLabels(Scenario)
	require.NoError(t, err)
	other, err := k3s.OwnedLabels(Scenario + "-other")
	require.NoError(t, err)
	foreign := map[string]map[string]string{ // ConfigMaps that are not the scenario's
		k3s.Namespace + "/k3stest-unlabelled":   nil,
		k3s.Namespace + "/k3stest-managed-only": {k3s.LabelManagedBy: k3s.ManagedBy},
		k3s.Namespace + "/k3stest-other":        other,
		"default/k3stest-elsewhere":             owned,
	}
	for key, l := range foreign {
		ns, name, _ := strings.Cut(key, "/")
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, create)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cs.CoreV1().ConfigMaps(ns).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	// what is not the scenario's: every ConfigMap and pod of the
	// namespace and these, as they are now
	kept := map[string]version{}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range cms.Items {
		if o.Labels[k3s.LabelScenario] != Scenario || o.Namespace != k3s.Namespace {
			kept["ConfigMap "+o.Namespace+"/"+o.Name] = version{string(o.UID), o.ResourceVersion}
		}
	}
	pods, err := cs.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range pods.Items {
		kept["Pod "+o.Namespace+"/"+o.Name] = version{string(o.UID), o.ResourceVersion}
	}

	td, err := k3s.PlanDown(ctx, quiet(), c, Scenario)
	require.NoError(t, err)
	var listed []string
	for _, o := range td.Objects {
		require.Equal(t, k3s.Namespace, o.Namespace, "%s", o)
		// a DaemonSet controller's revisions carry the pod template's
		// labels, so they are the scenario's too (and its to delete)
		if o.Kind != "ControllerRevision" {
			listed = append(listed, o.Kind+" "+o.Name)
		}
	}
	require.ElementsMatch(t, ours, listed)
	require.NoError(t, td.Apply(ctx, quiet(), c))
	require.NotEmpty(t, td.KeepNamespace, "the namespace holds other objects: it stays")

	for _, o := range td.Objects {
		require.Eventually(t, func() bool {
			_, err := c.Dynamic.Resource(o.GVR()).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, time.Minute, 200*time.Millisecond, "%s is deleted", o)
	}
	for key, was := range kept {
		kind, nsName, _ := strings.Cut(key, " ")
		ns, name, _ := strings.Cut(nsName, "/")
		var uid, rv string
		switch kind {
		case "ConfigMap":
			o, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err, "%s is kept", key)
			uid, rv = string(o.UID), o.ResourceVersion
		case "Pod":
			o, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err, "%s is kept", key)
			require.Nil(t, o.DeletionTimestamp, "%s is kept", key)
			uid = string(o.UID) // a running pod's status moves on
			rv = was.rv
		}
		require.Equal(t, was, version{uid, rv}, "%s is unchanged", key)
	}
	t.Logf("down deleted %d objects of %s and kept %d others: %s", len(td.Objects), Scenario, len(kept), td.KeepNamespace)
}

// removeLeftovers deletes what a killed earlier run left of scenario.
func removeLeftovers(t *testing.T, c *k3s.Cluster, scenario string) {
	td, err := k3s.PlanDown(t.Context(), quiet(), c, scenario)
	require.NoError(t, err)
	if len(td.Objects) > 0 {
		t.Logf("removing %d objects an earlier run left", len(td.Objects))
		require.NoError(t, td.Apply(t.Context(), quiet(), c))
	}
}
