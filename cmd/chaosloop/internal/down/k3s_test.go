package down_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const scenario = "../../../../clusters/k3s/testdata/faults.yaml" // name: k3stest

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	if os.Getenv("CHAOSLOOP_UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
	}
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}

func labels(scenario string) map[string]string {
	l := map[string]string{k3s.LabelManagedBy: k3s.ManagedBy}
	if scenario != "" {
		l[k3s.LabelScenario] = scenario
	}
	return l
}

// down --on k3s, against a real API server, deletes exactly the
// scenario's objects (namespace chaosloop, both labels) and leaves every
// other object with its UID: objects in the namespace without the labels,
// with only one of them or another scenario's, the same labels in another
// namespace, the nodes (their labels are label's). Without --yes it
// deletes nothing. The namespace goes only once it holds nothing else.
func TestDownOnlyWhatChaosloopMade(t *testing.T) {
	s := apitest.Start(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	ns := func(name string, l map[string]string) {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	cm := func(namespace, name string, l map[string]string) {
		_, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	ns(k3s.Namespace, labels("k3stest"))
	ns("elsewhere", nil)
	// the scenario's
	cm(k3s.Namespace, "chaosloop-agent-dc1-cp", labels("k3stest"))
	cm(k3s.Namespace, "chaosloop-agent-dc1-w", labels("k3stest"))
	sel := map[string]string{"app.kubernetes.io/name": k3s.AgentName}
	_, err = cs.AppsV1().DaemonSets(k3s.Namespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: k3s.AgentName, Labels: labels("k3stest")},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// not the scenario's
	cm(k3s.Namespace, "adopter-notes", nil)
	cm(k3s.Namespace, "other-scenario", labels("other"))
	cm(k3s.Namespace, "managed-only", labels(""))
	cm(k3s.Namespace, "scenario-only", map[string]string{k3s.LabelScenario: "k3stest"})
	cm("elsewhere", "chaosloop-agent-dc1-cp", labels("k3stest"))
	for _, n := range []string{"dc1-cp", "dc1-w", "dc2-w"} {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n,
			Labels: map[string]string{"chaosloop.io/site": "dc1", k3s.LabelManagedBy: k3s.ManagedBy, k3s.LabelScenario: "k3stest"}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	before := apitest.StableSnapshot(t, s.Config)

	code, out, errs := run(append([]string{"down", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "would delete DaemonSet chaosloop/chaosloop-agent\n")
	require.Contains(t, out, "nothing deleted; re-run with --yes")
	require.Empty(t, before.Diff(apitest.TakeSnapshot(t, s.Config)), "without --yes nothing is deleted")

	code, out, errs = run(append([]string{"down", scenario, "--yes"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	golden(t, "testdata/down-k3s.golden", out)
	require.Equal(t, strings.Join([]string{
		"deleted configmaps chaosloop/chaosloop-agent-dc1-cp",
		"deleted configmaps chaosloop/chaosloop-agent-dc1-w",
		"deleted daemonsets.apps chaosloop/chaosloop-agent",
	}, "\n"), before.Diff(apitest.TakeSnapshot(t, s.Config)), "exactly the scenario's objects are deleted; everything else keeps its UID and version")

	// once the namespace holds only the other scenario's object, its down
	// (by NAME) deletes that and the namespace, which chaosloop labelled
	for _, name := range []string{"adopter-notes", "managed-only", "scenario-only"} {
		require.NoError(t, cs.CoreV1().ConfigMaps(k3s.Namespace).Delete(ctx, name, metav1.DeleteOptions{}))
	}
	code, out, errs = run(append([]string{"down", "other", "--yes"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "deleted ConfigMap chaosloop/other-scenario\ndeleted namespace chaosloop")
	got, err := cs.CoreV1().Namespaces().Get(ctx, k3s.Namespace, metav1.GetOptions{})
	require.NoError(t, err, "no namespace controller runs: it stays Terminating")
	require.NotNil(t, got.DeletionTimestamp)
	_, err = cs.CoreV1().ConfigMaps("elsewhere").Get(ctx, "chaosloop-agent-dc1-cp", metav1.GetOptions{})
	require.NoError(t, err)
	n, err := cs.CoreV1().Nodes().Get(ctx, "dc1-cp", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "dc1", n.Labels["chaosloop.io/site"], "node labels are label's")
}

// A namespace chaosloop did not label is never deleted, even empty.
func TestDownKeepsAForeignNamespace(t *testing.T) {
	s := apitest.Start(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k3s.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps(k3s.Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: labels("k3stest")}}, metav1.CreateOptions{})
	require.NoError(t, err)
	code, out, errs := run("down", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--yes")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "deleted ConfigMap chaosloop/x\nkeeping namespace chaosloop: it is not labelled app.kubernetes.io/managed-by=chaosloop: chaosloop did not create it\n")
	got, err := cs.CoreV1().Namespaces().Get(ctx, k3s.Namespace, metav1.GetOptions{})
	require.NoError(t, err)
	require.Nil(t, got.DeletionTimestamp)
}

// down's k3s flags are refused where they would be ignored, before any
// cluster is asked anything (usage errors, 2).
func TestDownK3sUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"down", "x", "--yes"}, "--kubeconfig, --context, --node-map and --yes are for --on k3s"},
		{[]string{"down", "x", "--context", "lab"}, "--kubeconfig, --context, --node-map and --yes are for --on k3s"},
		{[]string{"down", "--all", "--on", "k3s", "--context", "lab"}, "--all is for labs on this machine"},
		{[]string{"down", "--on", "k3s", "--context", "lab"}, "down --on k3s needs the scenario: its FILE or NAME"},
		{[]string{"down", "x", "--on", "k3s", "--context", "lab", "--node-map", "m.yaml"}, "takes no --node-map"},
		{[]string{"down", "-f", scenario, "--on", "k3s", "--context", "lab"}, "not -f or --lab"},
	} {
		code, out, errs := run(tc.args...)
		require.Equal(t, cli.ExitInvalid, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, "%v", tc.args)
		require.Empty(t, out)
	}
}

// down --yes lifts the scenario's network faults before it deletes the
// agent: a node whose rules no agent can lift is named on stderr.
func TestDownRecoversFaultsFirst(t *testing.T) {
	s := apitest.Start(t)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k3s.Namespace, Labels: labels("")}}, metav1.CreateOptions{})
	require.NoError(t, err)
	c := &agent.Client{Kube: cs, Scenario: "k3stest"}
	_, err = c.Inject(ctx, "dc1-w", agent.Rule{ID: "cut", Kind: agent.Isolate, Peers: []string{"198.18.0.2"}})
	require.NoError(t, err)
	code, out, errs := run("down", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--yes")
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, errs, "warning: node dc1-w: no agent runs there to lift its rules")
	require.Contains(t, out, "deleted ConfigMap chaosloop/chaosloop-agent-dc1-w\n")
}
