package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const (
	testdata = "../../../../clusters/k3s/testdata/"
	scenario = testdata + "faults.yaml"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// createNodes makes Node objects (a bare API server has no kubelet to
// register any), Ready and of the scenario's size.
func createNodes(t *testing.T, cfg *rest.Config, names ...string) {
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	for _, n := range names {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"kubernetes.io/hostname": n, "adopter.example/rack": "a7"}},
			Status: corev1.NodeStatus{
				Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("64Gi")},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
		_, err := cs.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// golden compares got with a file; CHAOSLOOP_UPDATE_GOLDEN=1 rewrites it.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if os.Getenv("CHAOSLOOP_UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(file, []byte(got), 0o644))
	}
	want, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}

// plan, end to end against a real API server, changes nothing: every
// object of every resource has the same UID and resourceVersion before
// and after plans in every format, and after the plans it refuses (no
// context, no BMC, --on kind). The refusals are usage errors (2).
func TestPlanChangesNothing(t *testing.T) {
	s := apitest.Start(t)
	createNodes(t, s.Config, "dc1-cp", "dc1-w", "server-9")
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--node-map", testdata + "faults-nodemap.yaml", "--seed", "7"}
	before := apitest.StableSnapshot(t, s.Config)
	require.Contains(t, before, "nodes /server-9")

	code, out, errs := run(append([]string{"plan", scenario, "--bmc", testdata + "bmc.yaml"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	golden(t, "testdata/plan.golden", out)

	code, out, errs = run(append([]string{"plan", scenario, "--bmc", testdata + "bmc.yaml", "-o", "json"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	var p k3s.RunPlan
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	require.Equal(t, "apitest", p.Context)
	require.Equal(t, uint64(7), p.Seed)
	require.Len(t, p.Faults, 7)
	require.Equal(t, k3s.MechanismBMC, p.Faults[1].Steps[0].Mechanism)
	require.Equal(t, &k3s.BMCRef{Protocol: "redfish", Address: "https://10.0.0.11"}, p.Faults[1].Steps[0].BMC)

	code, out, errs = run(append([]string{"plan", scenario, "--bmc", testdata + "bmc.yaml", "-o", "yaml"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	var y map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(out), &y))
	require.Equal(t, "k3stest", y["scenario"])

	// deploy mode: a pod per member of the etcd chaosloop deploys
	code, out, errs = run(append([]string{"plan", testdata + "deploy.yaml", "--registry", "registry.lab:5000/chaosloop"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Regexp(t, `Pod +chaosloop +etcd-0\.etcd +member 0 of service/etcd \(etcd, from registry\.lab:5000/chaosloop/engine-etcd:\S+\) on node/dc1-cp, in its network at ports 4379, 4380; its files in /var/lib/chaosloop/k3sdeploy/etcd-0 there\n`, out)
	require.Contains(t, out, "member 2 of service/etcd (etcd, from registry.lab:5000/chaosloop/engine-etcd:")
	require.Contains(t, out, ") on node/server-9,", "the node map applies")
	require.Contains(t, out, "SIGKILL the processes of service/etcd/1 on node/dc1-w (its agent; started again at the fault's end)")
	code, out, errs = run(append([]string{"plan", testdata + "deploy.yaml", "--port-offset", "100"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "member 1 of service/etcd (etcd, from the etcd image in --registry) on node/dc1-w, in its network at ports 2479, 2480")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig},
			`no context named: chaosloop uses a cluster only through a context named with --context (the kubeconfig's current context, "apitest", is not used unless named); contexts in ` + s.Kubeconfig + `: apitest`},
		{[]string{"down", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--yes"},
			`no context named: chaosloop uses a cluster only through a context named with --context (the kubeconfig's current context, "apitest", is not used unless named); contexts in ` + s.Kubeconfig + `: apitest`},
		{append([]string{"plan", scenario}, flags...),
			"no BMC for node(s) dc1-cp, dc1-w, dc2-w; no BMC inventory was given (--bmc FILE)"},
		{append([]string{"plan", scenario, "--bmc", testdata + "bmc-partial.yaml"}, flags...),
			"no BMC for node(s) dc1-cp, dc1-w; the BMC inventory " + testdata + "bmc-partial.yaml lists none of them"},
		{[]string{"plan", scenario, "--on", "kind"}, "plan works on --on k3s only"},
		{[]string{"plan", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", "prod"}, `no context "prod" in the kubeconfig`},
	} {
		code, out, errs := run(tc.args...)
		require.Equal(t, cli.ExitInvalid, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, "%v", tc.args)
		require.Empty(t, out, "%v", tc.args)
	}

	after := apitest.TakeSnapshot(t, s.Config)
	require.Empty(t, before.Diff(after), "plan changed the cluster")
	require.Greater(t, len(after), 50, "the snapshot sees the server's own objects too: %v", after.Keys())
	t.Logf("%d objects unchanged", len(after))
}
