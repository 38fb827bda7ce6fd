package fault_test

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
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const scenario = "../../../../clusters/k3s/testdata/faults.yaml" // name: k3stest

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// fault and heal --on k3s: what they refuse and with which exit status,
// before or without acting; and down refuses to delete while a power
// fault's record is the only way to power its nodes on again.
func TestFaultAndHealOnK3s(t *testing.T) {
	s := apitest.Start(t)
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fault", "isolate", "site/dc2", "--on", "k3s", "--context", s.Context, "--kubeconfig", s.Kubeconfig}, cli.ExitInvalid, "--on k3s needs the scenario FILE"},
		{append([]string{"fault", scenario, "isolate", "site/dc2"}, "--on", "k3s", "--kubeconfig", s.Kubeconfig), cli.ExitInvalid, "no context named"},
		{append([]string{"fault", scenario, "power-off", "rack/dc1/r1"}, flags...), cli.ExitInvalid, "no BMC for node(s) dc1-cp, dc1-w"},
		{append([]string{"fault", scenario, "kill", "service/handlers/0"}, flags...), cli.ExitFail, "not available on --on k3s yet"},
		{append([]string{"fault", scenario, "isolate", "site/dc2", "--for", "0s"}, flags...), cli.ExitInvalid, "--for must be positive"},
		{[]string{"fault", "isolate", "site/dc2", "--context", "x"}, cli.ExitInvalid, "are for --on k3s"},
		{[]string{"heal", "--context", "x"}, cli.ExitInvalid, "are for --on k3s"},
	} {
		code, out, errs := run(tc.args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, "%v", tc.args)
		require.Empty(t, out, "%v", tc.args)
	}

	// heal with nothing in place
	code, out, errs := run(append([]string{"heal", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Equal(t, "every fault recovered\n", out)

	// a power fault recorded (as a crashed chaosloop would leave it): down
	// keeps everything and says how to heal it
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	owned, err := k3s.OwnedLabels("k3stest")
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k3s.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps(k3s.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: nemesis.StateName("k3stest"), Labels: owned},
		Data:       map[string]string{"faults.json": `[{"action":"power-off","target":"rack/dc1/r1","since":"2026-12-03T03:00:00Z"}]`},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	code, _, errs = run(append([]string{"down", scenario, "--yes"}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	require.Contains(t, errs, "power faults are in place (power-off rack/dc1/r1); nothing deleted: heal them first")
	_, err = cs.CoreV1().ConfigMaps(k3s.Namespace).Get(ctx, nemesis.StateName("k3stest"), metav1.GetOptions{})
	require.NoError(t, err, "kept")
}
