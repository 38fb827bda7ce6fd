package k3stest

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
)

// TestOnAnAPIServer runs the checks on a real API server with two Ready
// nodes (Node objects; no kubelet, no controllers), as the kind backend's
// test runs them on a kind cluster.
func TestOnAnAPIServer(t *testing.T) {
	s := apitest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	for _, name := range []string{"server-1.example.org", "server-2.example.org"} {
		n, err := cs.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"kubernetes.io/hostname": name, "adopter.example/rack": "a"}}}, metav1.CreateOptions{})
		require.NoError(t, err)
		n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi")}
		n.Status.Allocatable = n.Status.Capacity
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	RealCluster(t, s.Kubeconfig, s.Context)
}
