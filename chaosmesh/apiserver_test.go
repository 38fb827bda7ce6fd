package chaosmesh

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// crdPlurals are the Chaos Mesh CRDs the export uses: the Workflow, and
// the chaos kinds its templates embed (what Chaos Mesh's workflow
// controller creates from them).
var crdPlurals = []string{"workflows", "networkchaos", "podchaos"}

// resources are the chaos kinds' API resources.
var resources = map[v1alpha1.TemplateType]string{
	v1alpha1.TypeNetworkChaos: "networkchaos",
	v1alpha1.TypePodChaos:     "podchaos",
}

var strictCreate = metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}

// TestAPIServerAcceptsExport installs Chaos Mesh's CRDs (crdModule) in a
// real API server and creates there, server-side with strict field
// validation (kubectl apply's default), every object the export makes of
// the golden scenarios: each Workflow as `chaosloop export chaos-mesh -o
// json` writes it, and each NetworkChaos and PodChaos its templates make,
// built by Chaos Mesh's own code as its workflow controller builds them.
// What the server stores keeps every field sent. Objects the CRDs refuse
// (an unknown field, a value outside an enum, a duration the pattern
// refuses) are refused: the validation is live.
//
// The API server is apitest's (etcd and kube-apiserver on loopback), or,
// with CHAOSLOOP_K3S_KUBECONFIG set, that cluster (context
// CHAOSLOOP_K3S_CONTEXT, else the file's current one). There the test
// works in a namespace it creates and deletes, creates only the CRDs the
// cluster lacks (deleting them afterwards) and keeps the ones it has; a
// Chaos Mesh running there starts the workflows and chaos, which select
// only pods of that empty namespace.
func TestAPIServerAcceptsExport(t *testing.T) {
	cfg := apiCluster(t)
	manifests := make([][]byte, len(crdPlurals))
	for i, p := range crdPlurals {
		manifests[i] = crdManifest(t, p)
	}
	start := time.Now()
	created := apitest.EnsureCRDs(t, cfg, manifests...)
	t.Logf("CRDs %v Established in %s (created: %v)", crdPlurals, time.Since(start).Round(time.Millisecond), created)
	ns := apitest.Namespace(t, cfg, "chaosloop-export-")
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)

	for _, name := range slices.Sorted(maps.Keys(goldenCases)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			sc, err := scenarios.Parse(goldenCases[name])
			require.NoError(t, err)
			ex, err := Build(sc, Options{Namespace: ns})
			require.NoError(t, err)
			createKept(t, dyn, "workflows", toObject(t, ex.Manifest()))
			n := 0
			for _, tp := range ex.Workflow.Spec.Templates {
				if tp.EmbedChaos == nil {
					continue
				}
				createKept(t, dyn, resources[tp.Type], chaosObject(t, ex.Workflow, tp))
				n++
			}
			require.NotZero(t, n)
			t.Logf("workflow %s and its %d chaos objects created in %s", ex.Workflow.Name, n, time.Since(start).Round(time.Millisecond))
		})
	}

	t.Run("refused", func(t *testing.T) {
		ex, err := Build(mustParse(t, "../scenarios/quickstart.yaml"), Options{Namespace: ns})
		require.NoError(t, err)
		wf := toObject(t, ex.Manifest())
		wf.SetName("refused")
		// a field the Workflow CRD does not list, deep in a template
		tps, _, _ := unstructured.NestedSlice(wf.Object, "spec", "templates")
		last := len(tps) - 1
		tps[last].(map[string]any)["networkChaos"].(map[string]any)["bogus"] = true
		require.NoError(t, unstructured.SetNestedSlice(wf.Object, tps, "spec", "templates"))
		err = create(dyn, "workflows", wf)
		require.True(t, apierrors.IsBadRequest(err), "an unknown field: %v", err)
		require.ErrorContains(t, err, fmt.Sprintf(`unknown field "spec.templates[%d].networkChaos.bogus"`, last))
		// a Go-style duration, which the CRD's pattern refuses
		delete(tps[last].(map[string]any)["networkChaos"].(map[string]any), "bogus")
		tps[last].(map[string]any)["networkChaos"].(map[string]any)["delay"] = map[string]any{"latency": "1m30s"}
		require.NoError(t, unstructured.SetNestedSlice(wf.Object, tps, "spec", "templates"))
		err = create(dyn, "workflows", wf)
		require.True(t, apierrors.IsInvalid(err), "a latency the pattern refuses: %v", err)
		require.ErrorContains(t, err, "delay.latency")

		// an action outside the NetworkChaos CRD's enum
		var tp v1alpha1.Template
		for _, c := range ex.Workflow.Spec.Templates {
			if c.Type == v1alpha1.TypeNetworkChaos {
				tp = c
			}
		}
		nc := chaosObject(t, ex.Workflow, tp)
		require.NoError(t, unstructured.SetNestedField(nc.Object, "explode", "spec", "action"))
		err = create(dyn, "networkchaos", nc)
		require.True(t, apierrors.IsInvalid(err), "an action the enum does not list: %v", err)
		require.ErrorContains(t, err, "spec.action")
		// the same object with its own action is taken
		require.NoError(t, unstructured.SetNestedField(nc.Object, string(tp.NetworkChaos.Action), "spec", "action"))
		nc.SetName("accepted")
		require.NoError(t, create(dyn, "networkchaos", nc))
	})
}

// apiCluster is the cluster of $CHAOSLOOP_K3S_KUBECONFIG, else a fresh
// API server of this test's own.
func apiCluster(t *testing.T) *rest.Config {
	t.Helper()
	file := os.Getenv("CHAOSLOOP_K3S_KUBECONFIG")
	if file == "" {
		return apitest.Start(t).Config
	}
	context := os.Getenv("CHAOSLOOP_K3S_CONTEXT")
	if context == "" {
		raw, err := clientcmd.LoadFromFile(file)
		require.NoError(t, err)
		require.NotEmpty(t, raw.CurrentContext, "set CHAOSLOOP_K3S_CONTEXT")
		context = raw.CurrentContext
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: file},
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	require.NoError(t, err)
	t.Logf("cluster: %s (context %s of %s)", cfg.Host, context, file)
	return cfg
}

func mustParse(t *testing.T, file string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse(file)
	require.NoError(t, err)
	return sc
}

// toObject is v as its JSON encoding says: what the export writes.
func toObject(t *testing.T, v any) *unstructured.Unstructured {
	t.Helper()
	js, err := json.Marshal(v)
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(js, &obj))
	return &unstructured.Unstructured{Object: obj}
}

// chaosObject is the chaos object Chaos Mesh's workflow controller
// creates for a chaos template (pkg/workflow/controllers, createChaos:
// EmbedChaos.SpawnNewObject, the template's spec as it is), in the
// workflow's namespace, labelled as the controller labels it, named
// WORKFLOW-TEMPLATE (the controller names it after the workflow node),
// without the status an API type always carries.
func chaosObject(t *testing.T, wf *v1alpha1.Workflow, tp v1alpha1.Template) *unstructured.Unstructured {
	t.Helper()
	obj, err := tp.EmbedChaos.SpawnNewObject(tp.Type)
	require.NoError(t, err)
	name := wf.Name + "-" + tp.Name
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.SchemeGroupVersion.WithKind(string(tp.Type)))
	obj.SetName(name)
	obj.SetNamespace(wf.Namespace)
	obj.SetLabels(map[string]string{v1alpha1.LabelControlledBy: name, v1alpha1.LabelWorkflow: wf.Name})
	u := toObject(t, obj)
	delete(u.Object, "status")
	return u
}

func create(dyn dynamic.Interface, resource string, obj *unstructured.Unstructured) error {
	gvr := v1alpha1.SchemeGroupVersion.WithResource(resource)
	_, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).Create(context.Background(), obj, strictCreate)
	return err
}

// createKept creates obj and checks that the server stored every field
// of its spec as sent: nothing pruned, nothing rewritten.
func createKept(t *testing.T, dyn dynamic.Interface, resource string, obj *unstructured.Unstructured) {
	t.Helper()
	what := fmt.Sprintf("%s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	gvr := v1alpha1.SchemeGroupVersion.WithResource(resource)
	got, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).Create(context.Background(), obj, strictCreate)
	require.NoError(t, err, what)
	sent, stored := jsonOf(t, obj.Object["spec"]), jsonOf(t, got.Object["spec"])
	if path := missing(sent, stored, "spec"); path != "" {
		t.Fatalf("%s: the server did not keep %s as sent", what, path)
	}
	for k, v := range obj.GetLabels() {
		require.Equal(t, v, got.GetLabels()[k], what)
	}
	for k, v := range obj.GetAnnotations() {
		require.Equal(t, v, got.GetAnnotations()[k], what)
	}
}

// jsonOf is v decoded from its JSON as encoding/json decodes into any
// (numbers float64), so that sent and stored values compare.
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	js, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(js, &out))
	return out
}

// missing is the path of the first value of sent that stored does not
// hold as it is ("" when stored holds all of sent; it may hold more: the
// server's defaults).
func missing(sent, stored any, path string) string {
	switch s := sent.(type) {
	case map[string]any:
		st, ok := stored.(map[string]any)
		if !ok {
			return path
		}
		for _, k := range slices.Sorted(maps.Keys(s)) {
			if p := missing(s[k], st[k], path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		st, ok := stored.([]any)
		if !ok || len(st) != len(s) {
			return path
		}
		for i := range s {
			if p := missing(s[i], st[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	default:
		if !reflect.DeepEqual(sent, stored) {
			return fmt.Sprintf("%s (sent %v, stored %v)", path, sent, stored)
		}
	}
	return ""
}
