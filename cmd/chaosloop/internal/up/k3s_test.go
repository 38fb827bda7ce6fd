package up_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent/agenttest"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const scenario = "../../../../clusters/k3s/testdata/faults.yaml" // name: k3stest

const image = "registry.example:5000/agent:v1"

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// up --on k3s against a real API server (no kubelet: the test stands in
// for the agents' pods once the DaemonSet is there): the agent's objects
// made with the scenario's labels and the image named; it waits for the
// agents on the scenario's nodes the cluster has (dc2-w it has not); run
// again it writes nothing; an agent of another scenario is refused.
func TestUpDeploysTheAgent(t *testing.T) {
	s := apitest.Start(t)
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	for _, name := range []string{"dc1-cp", "dc1-w"} {
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--agent-image", image}

	// no agent pod ever: up says which nodes have none
	code, out, errs := run(append([]string{"up", scenario, "--wait", "2s"}, flags...)...)
	require.Equal(t, cli.ExitFail, code, "%s\n%s", out, errs)
	require.Contains(t, errs, "scenario node dc2-w: no cluster node dc2-w (name it in --node-map)")
	require.Contains(t, errs, "after 2s no agent runs on node(s) dc1-cp, dc1-w")

	ds, err := cs.AppsV1().DaemonSets(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, image, ds.Spec.Template.Spec.Containers[0].Image)
	owned, err := k3s.OwnedLabels("k3stest")
	require.NoError(t, err)
	for k, v := range owned {
		require.Equal(t, v, ds.Labels[k], k)
	}
	for _, get := range []func() (metav1.Object, error){
		func() (metav1.Object, error) {
			return cs.CoreV1().ServiceAccounts(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		},
		func() (metav1.Object, error) {
			return cs.RbacV1().Roles(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		},
		func() (metav1.Object, error) {
			return cs.RbacV1().RoleBindings(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		},
	} {
		o, err := get()
		require.NoError(t, err)
		require.Equal(t, "k3stest", o.GetLabels()[k3s.LabelScenario], o.GetName())
	}

	// the agents run: up returns once both nodes have theirs
	agenttest.RunAgents(t, cs, "k3stest", "dc1-cp", "dc1-w")
	code, out, errs = run(append([]string{"up", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, "%s\n%s", out, errs)
	require.Contains(t, out, "node/dc1-cp: agent running")
	require.Contains(t, out, "agents running on 2 nodes")
	require.Contains(t, out, "services: not deployed")

	// idempotent: nothing written again
	before, err := cs.AppsV1().DaemonSets(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
	require.NoError(t, err)
	code, _, errs = run(append([]string{"up", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	after, err := cs.AppsV1().DaemonSets(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, before.ResourceVersion, after.ResourceVersion)

	// another scenario's agent is left alone
	after.Labels[k3s.LabelScenario] = "other"
	_, err = cs.AppsV1().DaemonSets(k3s.Namespace).Update(ctx, after, metav1.UpdateOptions{})
	require.NoError(t, err)
	code, _, errs = run(append([]string{"up", scenario}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	require.Contains(t, errs, "DaemonSet chaosloop/chaosloop-agent is the agent of scenario other")
	kept, err := cs.AppsV1().DaemonSets(k3s.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "other", kept.Labels[k3s.LabelScenario])
}
