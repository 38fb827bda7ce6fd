package apitest

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// CRDResource is apiextensions.k8s.io/v1's CustomResourceDefinitions.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// EstablishTimeout bounds how long a CRD may take to be Established.
const EstablishTimeout = time.Minute

// EnsureCRDs creates each CRD (a YAML or JSON manifest) the cluster does
// not have, deleting it again at cleanup, keeps the ones it has as they
// are (a shared cluster's own install is not the test's to replace), and
// waits until every one is Established. It returns the names of the CRDs
// it created.
func EnsureCRDs(tb testing.TB, cfg *rest.Config, manifests ...[]byte) []string {
	tb.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	crds := dyn.Resource(CRDResource)
	ctx := context.Background()
	var created, names []string
	for _, m := range manifests {
		var obj map[string]any
		if err := yaml.Unmarshal(m, &obj); err != nil {
			tb.Fatalf("CRD manifest: %v", err)
		}
		crd := &unstructured.Unstructured{Object: obj}
		name := crd.GetName()
		if crd.GetKind() != "CustomResourceDefinition" || name == "" {
			tb.Fatalf("not a CustomResourceDefinition: %s %q", crd.GetKind(), name)
		}
		names = append(names, name)
		_, err := crds.Create(ctx, crd, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
		if apierrors.IsAlreadyExists(err) && gone(tb, crds, name) {
			// one being deleted (a previous run's cleanup): its successor
			_, err = crds.Create(ctx, crd, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
		}
		switch {
		case apierrors.IsAlreadyExists(err):
			tb.Logf("CRD %s: the cluster has it already: kept as it is", name)
			continue
		case err != nil:
			tb.Fatalf("creating CRD %s: %v", name, err)
		}
		created = append(created, name)
		tb.Cleanup(func() {
			if err := crds.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				tb.Errorf("deleting CRD %s: %v", name, err)
			}
		})
	}
	deadline := time.Now().Add(EstablishTimeout)
	for _, name := range names {
		for {
			got, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				tb.Fatalf("CRD %s: %v", name, err)
			}
			if established(got) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("CRD %s not Established within %s: %v", name, EstablishTimeout, conditions(got))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return created
}

// gone waits until the CRD name, if it is being deleted, is gone, and
// says whether it was being deleted.
func gone(tb testing.TB, crds dynamic.ResourceInterface, name string) bool {
	tb.Helper()
	deadline := time.Now().Add(EstablishTimeout)
	for deleting := false; ; deleting = true {
		got, err := crds.Get(context.Background(), name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true
		case err != nil:
			tb.Fatalf("CRD %s: %v", name, err)
		case got.GetDeletionTimestamp() == nil:
			return deleting
		case time.Now().After(deadline):
			tb.Fatalf("CRD %s still being deleted after %s", name, EstablishTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func conditions(crd *unstructured.Unstructured) []any {
	cs, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	return cs
}

func established(crd *unstructured.Unstructured) bool {
	for _, c := range conditions(crd) {
		c, _ := c.(map[string]any)
		if c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}

// Namespace creates a namespace named from prefix (generateName) and
// deletes it at cleanup; it returns its name. On a bare API server (no
// controller manager) the deleted namespace stays Terminating, which no
// test sees: the server goes with it.
func Namespace(tb testing.TB, cfg *rest.Config, prefix string) string {
	tb.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	nss := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"generateName": prefix},
	}}
	got, err := nss.Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("creating a namespace %s…: %v", prefix, err)
	}
	name := got.GetName()
	tb.Cleanup(func() {
		err := nss.Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			tb.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}
