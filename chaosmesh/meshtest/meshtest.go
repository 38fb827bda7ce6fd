// Package meshtest checks chaosloop's Chaos Mesh export against a real
// API server with Chaos Mesh's own CRDs installed: apitest's server, or a
// cluster (the kind backend's test uses its kind cluster). Every object is
// created server-side with strict field validation, as kubectl apply does,
// and what the server stores must keep every field as sent.
package meshtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
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

	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// CRDModule is the Chaos Mesh module whose CRDs the workflows are checked
// against: the one the Go module proxy serves nearest the api module
// chaosloop builds with (go.mod).
const CRDModule = "github.com/chaos-mesh/chaos-mesh@v0.9.1-0.20260902003049-47411975a8cb"

// CRDPlurals are the Chaos Mesh CRDs the export uses: the Workflow, and
// the chaos kinds its templates embed (what Chaos Mesh's workflow
// controller creates from them).
var CRDPlurals = []string{"workflows", "networkchaos", "podchaos"}

// resources are the chaos kinds' API resources.
var resources = map[v1alpha1.TemplateType]string{
	v1alpha1.TypeNetworkChaos: "networkchaos",
	v1alpha1.TypePodChaos:     "podchaos",
}

var strictCreate = metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}

// CRDManifest is the CRD config/crd/bases/chaos-mesh.org_PLURAL.yaml of
// CRDModule (Go's module cache, downloaded when missing); the test is
// skipped where it cannot be had, except in CI.
func CRDManifest(t testing.TB, plural string) []byte {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", CRDModule).Output()
	var mod struct{ Dir, Error string }
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err != nil || mod.Dir == "" {
		// CI must check the schema: a skip there is a failure
		enginetest.RequireLab(t, fmt.Sprintf("the Chaos Mesh CRDs (%s) cannot be had here: %v %s", CRDModule, err, mod.Error))
	}
	data, err := os.ReadFile(filepath.Join(mod.Dir, "config/crd/bases/chaos-mesh.org_"+plural+".yaml"))
	require.NoError(t, err)
	return data
}

// Case is one scenario's export: its Workflow and the manifest
// `chaosloop export chaos-mesh -o json` writes of it.
type Case struct {
	Name     string
	Workflow *v1alpha1.Workflow
	Manifest any
}

// Accepts installs the CRDs the cluster lacks (deleting them afterwards),
// makes a namespace of its own, and creates there every case's Workflow
// and each NetworkChaos and PodChaos its templates make, built by Chaos
// Mesh's own code as its workflow controller builds them: each is
// accepted and stored as sent. Then objects the CRDs refuse (an unknown
// field, a duration the pattern refuses, an action outside the enum) are
// refused: the validation is live. build makes the cases for the
// namespace; the first must have a NetworkChaos template. A Chaos Mesh
// running on the cluster starts the workflows and chaos, which select
// only pods of that empty namespace.
func Accepts(t *testing.T, cfg *rest.Config, build func(t *testing.T, namespace string) []Case) {
	manifests := make([][]byte, len(CRDPlurals))
	for i, p := range CRDPlurals {
		manifests[i] = CRDManifest(t, p)
	}
	start := time.Now()
	created := apitest.EnsureCRDs(t, cfg, manifests...)
	t.Logf("CRDs %v Established in %s (created: %v)", CRDPlurals, time.Since(start).Round(time.Millisecond), created)
	ns := apitest.Namespace(t, cfg, "chaosloop-export-")
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	cases := build(t, ns)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			start := time.Now()
			createKept(t, dyn, "workflows", toObject(t, c.Manifest))
			n := 0
			for _, tp := range c.Workflow.Spec.Templates {
				if tp.EmbedChaos == nil {
					continue
				}
				createKept(t, dyn, resources[tp.Type], chaosObject(t, c.Workflow, tp))
				n++
			}
			require.NotZero(t, n)
			t.Logf("workflow %s and its %d chaos objects created in %s", c.Workflow.Name, n, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("refused", func(t *testing.T) { refused(t, dyn, cases[0]) })
}

// refused alters c's objects as a hand edit might, and the server refuses
// each; the object with its own action again is taken.
func refused(t *testing.T, dyn dynamic.Interface, c Case) {
	wf := toObject(t, c.Manifest)
	wf.SetName("refused")
	// a field the Workflow CRD does not list, deep in a template
	tps, _, _ := unstructured.NestedSlice(wf.Object, "spec", "templates")
	net := slices.IndexFunc(tps, func(tp any) bool { return tp.(map[string]any)["networkChaos"] != nil })
	require.GreaterOrEqual(t, net, 0, "%s has a NetworkChaos template", c.Name)
	nc := tps[net].(map[string]any)["networkChaos"].(map[string]any)
	nc["bogus"] = true
	require.NoError(t, unstructured.SetNestedSlice(wf.Object, tps, "spec", "templates"))
	err := create(dyn, "workflows", wf)
	require.True(t, apierrors.IsBadRequest(err), "an unknown field: %v", err)
	require.ErrorContains(t, err, fmt.Sprintf(`unknown field "spec.templates[%d].networkChaos.bogus"`, net))
	// a Go-style duration, which the CRD's pattern refuses
	delete(nc, "bogus")
	nc["delay"] = map[string]any{"latency": "1m30s"}
	require.NoError(t, unstructured.SetNestedSlice(wf.Object, tps, "spec", "templates"))
	err = create(dyn, "workflows", wf)
	require.True(t, apierrors.IsInvalid(err), "a latency the pattern refuses: %v", err)
	require.ErrorContains(t, err, "delay.latency")

	// an action outside the NetworkChaos CRD's enum
	var tp v1alpha1.Template
	for _, x := range c.Workflow.Spec.Templates {
		if x.Type == v1alpha1.TypeNetworkChaos {
			tp = x
		}
	}
	obj := chaosObject(t, c.Workflow, tp)
	require.NoError(t, unstructured.SetNestedField(obj.Object, "explode", "spec", "action"))
	err = create(dyn, "networkchaos", obj)
	require.True(t, apierrors.IsInvalid(err), "an action the enum does not list: %v", err)
	require.ErrorContains(t, err, "spec.action")
	// the same object with its own action is taken
	require.NoError(t, unstructured.SetNestedField(obj.Object, string(tp.NetworkChaos.Action), "spec", "action"))
	obj.SetName("accepted")
	require.NoError(t, create(dyn, "networkchaos", obj))
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
