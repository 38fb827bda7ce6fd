package apitest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
)

const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.chaosloop.io}
spec:
  group: test.chaosloop.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: string, enum: [small, large]}
`

// The server answers as the version built, through the kubeconfig it
// wrote; it validates a custom resource against its CRD's schema, and
// with strict field validation refuses a field the schema does not list.
func TestServer(t *testing.T) {
	s := Start(t)
	ctx := context.Background()

	// the kubeconfig file, as another client (kubectl) would load it
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: s.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: s.Context}).ClientConfig()
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	v, err := cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, k8sbin.KubernetesVersion, v.GitVersion)
	// the API server makes its own Service soon after /readyz
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		require.NoError(c, err)
		require.Equal(c, "198.19.240.1", svc.Spec.ClusterIP, "the Service range is %s", ServiceRange)
	}, time.Minute, 100*time.Millisecond)

	require.Equal(t, []string{"widgets.test.chaosloop.io"}, EnsureCRDs(t, s.Config, []byte(widgetCRD)))
	require.Empty(t, EnsureCRDs(t, s.Config, []byte(widgetCRD)), "a CRD the cluster has is kept")
	ns := Namespace(t, s.Config, "apitest-")
	dyn, err := dynamic.NewForConfig(s.Config)
	require.NoError(t, err)
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "test.chaosloop.io", Version: "v1", Resource: "widgets"}).Namespace(ns)
	widget := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "test.chaosloop.io/v1", "kind": "Widget",
			"metadata": map[string]any{"generateName": "w-"}, "spec": spec,
		}}
	}
	strict := metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
	_, err = widgets.Create(ctx, widget(map[string]any{"size": "small"}), strict)
	require.NoError(t, err)
	_, err = widgets.Create(ctx, widget(map[string]any{"size": "huge"}), strict)
	require.True(t, apierrors.IsInvalid(err), "a value the enum does not list: %v", err)
	require.ErrorContains(t, err, "spec.size")
	_, err = widgets.Create(ctx, widget(map[string]any{"size": "small", "colour": "red"}), strict)
	require.True(t, apierrors.IsBadRequest(err), "an unknown field: %v", err)
	require.ErrorContains(t, err, `unknown field "spec.colour"`)
}
