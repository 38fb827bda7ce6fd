package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// clientOnAPIServer is a Client of scenario agent-test on a real API
// server of the test's own, with namespace chaosloop made.
func clientOnAPIServer(t *testing.T) (kubernetes.Interface, *Client) {
	api := apitest.Start(t)
	kube, err := kubernetes.NewForConfig(api.Config)
	require.NoError(t, err)
	_, err = kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	return kube, &Client{Kube: kube, Log: enginetest.Log(t), Scenario: "agent-test"}
}

// TestClient edits desired states on a real API server (no root needed).
func TestClient(t *testing.T) {
	kube, c := clientOnAPIServer(t)
	ctx := t.Context()
	var err error
	_, err = (&Client{Kube: kube}).Inject(ctx, "n1", Rule{ID: "cut", Kind: Isolate, Peers: []string{"198.18.0.2"}})
	require.ErrorContains(t, err, "cannot label chaosloop's objects", "a client names its scenario")

	st, err := c.Applied(ctx, "n1")
	require.NoError(t, err)
	require.Zero(t, st, "no agent has reported")
	g, err := c.Recover(ctx, "n1", "nothing")
	require.NoError(t, err)
	require.Equal(t, int64(1), g, "recovering on a fresh node writes an empty desired state")

	cut := Rule{ID: "cut", Kind: Isolate, Peers: []string{"198.18.0.2"}}
	g, err = c.Inject(ctx, "n1", cut)
	require.NoError(t, err)
	require.Equal(t, int64(2), g)
	g, err = c.Inject(ctx, "n1", cut)
	require.NoError(t, err)
	require.Equal(t, int64(2), g, "idempotent")
	cut.Peers = append(cut.Peers, "198.18.0.3")
	g, err = c.Inject(ctx, "n1", cut)
	require.NoError(t, err)
	require.Equal(t, int64(3), g, "a changed rule replaces the old one")
	rules, gen, err := c.Rules(ctx, "n1")
	require.NoError(t, err)
	require.Equal(t, int64(3), gen)
	require.Len(t, rules, 1)
	require.Equal(t, []string{"198.18.0.2/32", "198.18.0.3/32"}, rules[0].Peers)

	cm, err := kube.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMapName("n1"), metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, ManagedBy, cm.Labels[ManagedByLabel])
	require.Equal(t, "n1", cm.Labels[NodeLabel])
	require.Equal(t, "agent-test", cm.Labels[k3s.LabelScenario], "down finds it")

	_, err = c.Inject(ctx, "n1", Rule{ID: "bad", Kind: Isolate})
	require.Error(t, err, "invalid rules are refused before writing")

	// concurrent writers: conflicts are retried, no rule is lost
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := c.Inject(ctx, "n2", Rule{ID: fmt.Sprintf("r%d", i), Kind: Latency, Peers: []string{"198.18.1.0/24"}, Delay: Duration(time.Duration(i+1) * time.Millisecond)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	rules, _, err = c.Rules(ctx, "n2")
	require.NoError(t, err)
	require.Len(t, rules, 8)

	// another scenario's desired state, which RecoverAll leaves alone
	other := &Client{Kube: kube, Log: enginetest.Log(t), Scenario: "other"}
	_, err = other.Inject(ctx, "n3", cut)
	require.NoError(t, err)

	gens, err := c.RecoverAll(ctx)
	require.NoError(t, err)
	require.Len(t, gens, 2)
	rules, _, err = other.Rules(ctx, "n3")
	require.NoError(t, err)
	require.Len(t, rules, 1, "another scenario's faults stay")
	for _, n := range []string{"n1", "n2"} {
		rules, gen, err := c.Rules(ctx, n)
		require.NoError(t, err)
		require.Empty(t, rules)
		require.Equal(t, gens[n], gen)
	}
	again, err := c.RecoverAll(ctx)
	require.NoError(t, err)
	require.Equal(t, gens, again, "idempotent")
}

// TestManifestAdmitted creates the manifest's objects, and a pod from the
// DaemonSet's template (what the DaemonSet controller would create), on a
// real API server: its validation and admission accept them.
func TestManifestAdmitted(t *testing.T) {
	api := apitest.Start(t)
	kube, err := kubernetes.NewForConfig(api.Config)
	require.NoError(t, err)
	ctx := t.Context()
	m, err := NewManifest("registry.example/chaosloop:v1", "agent-test")
	require.NoError(t, err)
	opts := metav1.CreateOptions{FieldValidation: "Strict", FieldManager: FieldManager}
	_, err = kube.CoreV1().Namespaces().Create(ctx, m.Namespace, opts)
	require.NoError(t, err)
	_, err = kube.CoreV1().ServiceAccounts(Namespace).Create(ctx, m.ServiceAccount, opts)
	require.NoError(t, err)
	_, err = kube.RbacV1().Roles(Namespace).Create(ctx, m.Role, opts)
	require.NoError(t, err)
	_, err = kube.RbacV1().RoleBindings(Namespace).Create(ctx, m.RoleBinding, opts)
	require.NoError(t, err)
	_, err = kube.AppsV1().DaemonSets(Namespace).Create(ctx, m.DaemonSet, opts)
	require.NoError(t, err)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: Name + "-x", Namespace: Namespace, Labels: m.DaemonSet.Spec.Template.Labels},
		Spec:       *m.DaemonSet.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = "node-a"
	_, err = kube.CoreV1().Pods(Namespace).Create(ctx, pod, opts)
	require.NoError(t, err)
}

// RecoverBeforeDown empties the scenario's desired states and waits for
// the agents that run: a node without one is stranded (reported, not
// waited for), a running agent that does not confirm is an error, and one
// that reports the empty state is recovered.
func TestRecoverBeforeDown(t *testing.T) {
	kube, c := clientOnAPIServer(t)
	ctx := t.Context()
	var err error
	cut := Rule{ID: "cut", Kind: Isolate, Peers: []string{"198.18.0.2"}}
	for _, n := range []string{"n1", "n2"} {
		_, err := c.Inject(ctx, n, cut)
		require.NoError(t, err)
	}
	// an agent pod on n2 only, running (no kubelet here: its status is set)
	m, err := NewManifest("registry.example/chaosloop:v1", "agent-test")
	require.NoError(t, err)
	_, err = kube.CoreV1().ServiceAccounts(Namespace).Create(ctx, m.ServiceAccount, metav1.CreateOptions{})
	require.NoError(t, err)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: Name + "-n2", Namespace: Namespace, Labels: m.DaemonSet.Spec.Template.Labels},
		Spec: *m.DaemonSet.Spec.Template.Spec.DeepCopy()}
	pod.Spec.NodeName = "n2"
	pod, err = kube.CoreV1().Pods(Namespace).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	pod.Status.Phase = corev1.PodRunning
	_, err = kube.CoreV1().Pods(Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)

	r, err := c.RecoverBeforeDown(ctx, time.Second)
	require.ErrorContains(t, err, "agent on n2: generation", "n2's agent never confirmed")
	require.Equal(t, []string{"n1"}, r.Stranded)
	require.Empty(t, r.Recovered)
	rules, gen, err := c.Rules(ctx, "n2")
	require.NoError(t, err)
	require.Empty(t, rules, "the desired state is empty all the same")

	// n2's agent applies it
	owned, err := k3s.OwnedLabels("agent-test")
	require.NoError(t, err)
	require.NoError(t, writeStatus(ctx, kube, "n2", owned, Status{Generation: gen, Applied: []string{}, Time: time.Now()}))
	r, err = c.RecoverBeforeDown(ctx, time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{"n2"}, r.Recovered)
	require.Equal(t, []string{"n1"}, r.Stranded)
}
