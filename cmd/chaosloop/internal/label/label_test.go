package label_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const scenario = "../../../../clusters/k3s/testdata/two-sites.yaml"

// apiServer is the little of the Kubernetes API that validate and label
// use: list nodes, and a merge patch of a node's labels. It counts the
// patches, so that a test sees what was sent.
type apiServer struct {
	mu      sync.Mutex
	nodes   map[string]*corev1.Node
	patches int
}

func newAPIServer(t *testing.T, names ...string) (*apiServer, string) {
	a := &apiServer{nodes: map[string]*corev1.Node{}}
	for _, n := range names {
		a.nodes[n] = &corev1.Node{
			TypeMeta:   metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"kubernetes.io/hostname": n}},
			Status: corev1.NodeStatus{
				Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("64Gi")},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
current-context: other
clusters:
  - {name: lab, cluster: {server: %q}}
  - {name: other, cluster: {server: "https://other.invalid"}}
users:
  - {name: u, user: {token: t}}
contexts:
  - {name: lab, context: {cluster: lab, user: u}}
  - {name: other, context: {cluster: other, user: u}}
`, srv.URL), 0o600))
	return a, kubeconfig
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch name, one := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/"); {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes":
		list := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
		for _, n := range a.nodes {
			list.Items = append(list.Items, *n)
		}
		_ = json.NewEncoder(w).Encode(list)
	case r.Method == http.MethodPatch && one && a.nodes[name] != nil:
		a.patches++
		a.patch(w, r, a.nodes[name])
	default:
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}`, http.StatusNotFound)
	}
}

// patch applies {"metadata":{"labels":{...}}}, a null removing a key.
func (a *apiServer) patch(w http.ResponseWriter, r *http.Request, n *corev1.Node) {
	var p struct {
		Metadata struct {
			Labels map[string]*string `json:"labels"`
		} `json:"metadata"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &p); err != nil || r.Header.Get("Content-Type") != "application/strategic-merge-patch+json" {
		http.Error(w, "bad patch", http.StatusBadRequest)
		return
	}
	for k, v := range p.Metadata.Labels {
		if v == nil {
			delete(n.Labels, k)
		} else {
			n.Labels[k] = *v
		}
	}
	_ = json.NewEncoder(w).Encode(n)
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// validate finds the drift, label shows it and changes nothing, label
// --yes makes it, and then both find nothing to do.
func TestValidateAndLabelAgainstAServer(t *testing.T) {
	api, kc := newAPIServer(t, "dc1-cp", "dc1-w", "dc2-w")
	flags := []string{"--on", "k3s", "--kubeconfig", kc, "--context", "lab"}

	code, out, errs := run(append([]string{"validate", scenario}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	require.Contains(t, out, "drift: node/dc2-w: label chaosloop.io/rack missing (want \"r1\")")
	require.Contains(t, out, "context lab: 3 node(s) checked; 0 error(s), 23 label drift, 0 warning(s)")

	code, out, errs = run(append([]string{"label", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "context lab: 23 label change(s) on 3 node(s)\nlabel node/dc1-cp\n  + chaosloop.io/rack=r1\n")
	require.Contains(t, out, "nothing changed; re-run with --yes")
	require.Zero(t, api.patches, "without --yes nothing is sent")

	code, out, errs = run(append([]string{"label", scenario, "--yes"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "labelled 3 node(s)")
	require.Equal(t, 3, api.patches)
	require.Equal(t, "dc2-w", api.nodes["dc2-w"].Labels["kubernetes.io/hostname"])

	code, out, _ = run(append([]string{"label", scenario, "--yes"}, flags...)...)
	require.Equal(t, cli.ExitOK, code)
	require.Equal(t, "context lab: no label to change\n", out)
	require.Equal(t, 3, api.patches, "idempotent: nothing sent the second time")

	// the test scenario's pools are smaller than the seed's: the lint's
	// errors, not the cluster's, make this 1
	code, out, errs = run(append([]string{"validate", scenario, "-o", "json"}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	var res struct {
		Valid   bool
		Summary struct{ Errors int }
		Cluster struct {
			Context  string
			Findings []any
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, 2, res.Summary.Errors)
	require.Equal(t, "lab", res.Cluster.Context)
	require.Empty(t, res.Cluster.Findings)
}

// A scenario node without a cluster node: the others are labelled, and
// label exits 1 naming it.
func TestLabelMissingNode(t *testing.T) {
	api, kc := newAPIServer(t, "dc1-cp", "server-9")
	nodeMap := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(nodeMap, []byte("dc1-w: server-9\n"), 0o644))
	code, _, errs := run("label", scenario, "--on", "k3s", "--kubeconfig", kc, "--context", "lab", "--node-map", nodeMap, "--yes")
	require.Equal(t, cli.ExitFail, code)
	require.Equal(t, "not labelled: scenario node dc2-w: node/dc2-w: no such node in the cluster (name it in --node-map if it has another name)\n", errs)
	require.Equal(t, 2, api.patches)
	require.Equal(t, "dc1", api.nodes["server-9"].Labels["chaosloop.io/site"])
}

// The rails: no context, an unknown one, --on other than k3s, cluster
// flags without --on k3s, an invalid node map; each a usage error (2)
// before the cluster is asked anything.
func TestClusterRails(t *testing.T) {
	api, kc := newAPIServer(t, "dc1-cp")
	badMap := filepath.Join(t.TempDir(), "nodes.yaml")
	require.NoError(t, os.WriteFile(badMap, []byte("dc9: x\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"label", scenario, "--on", "k3s", "--kubeconfig", kc}, `no context named: chaosloop uses a cluster only through a context named with --context (the kubeconfig's current context, "other", is not used unless named); contexts in ` + kc + `: lab, other`},
		{[]string{"validate", scenario, "--on", "k3s", "--kubeconfig", kc, "--context", "prod"}, `no context "prod" in the kubeconfig; contexts in ` + kc + `: lab, other`},
		{[]string{"label", scenario, "--kubeconfig", kc, "--context", "lab"}, "label works on --on k3s only"},
		{[]string{"label", scenario, "--on", "kind", "--context", "lab"}, "label works on --on k3s only"},
		{[]string{"validate", scenario, "--context", "lab"}, "--kubeconfig, --context and --node-map are for --on k3s"},
		{[]string{"validate", scenario, scenario, "--on", "k3s", "--context", "lab"}, "--on k3s checks one scenario FILE against the cluster, not 2"},
		{[]string{"label", scenario, "--on", "k3s", "--kubeconfig", kc, "--context", "lab", "--node-map", badMap}, badMap + `:1:1: "dc9" is not a node of the scenario`},
		{[]string{"up", scenario, "--on", "k3s"}, "--on k3s needs --registry (where 'chaosloop images push' put the images) or --agent-image"},
		{[]string{"up", scenario, "--on", "k3s", "--kubeconfig", kc, "--registry", "registry"}, `registry "registry": want HOST[:PORT][/PATH]`},
		{[]string{"up", scenario, "--on", "k3s", "--kubeconfig", kc, "--registry", "registry.lab:5000"}, "no context named"},
		{[]string{"up", scenario, "--registry", "registry.lab:5000"}, "--registry and --agent-image are for --on k3s"},
		{[]string{"run", scenario, "--on", "k3s"}, "service handlers is not attached (services[].attach): chaosloop runs a stateless service's workers only when it drives the load, which it does when it deploys every service (--registry given, none attached)"},
	} {
		code, _, errs := run(tc.args...)
		require.Equal(t, cli.ExitInvalid, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, "%v", tc.args)
	}
	require.Zero(t, api.patches)
}

// A cluster that does not answer is chaosloop failing (1), not the
// user's input (2).
func TestUnreachableCluster(t *testing.T) {
	_, kc := newAPIServer(t)
	code, _, errs := run("validate", scenario, "--on", "k3s", "--kubeconfig", kc, "--context", "other")
	require.Equal(t, cli.ExitFail, code)
	require.Contains(t, errs, "listing the cluster's nodes")
}
