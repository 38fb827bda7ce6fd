package k3stest

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s/agent/agenttest"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
)

// The objects below are made on an API server with no kubelet and no
// controller manager (apitest): what those would set, the status a
// kubelet reports, a namespace's default ServiceAccount, is set here.

// Node is a node Nodes makes.
type Node struct {
	Name string
	// IP is its InternalIP ("": none).
	IP           string
	ControlPlane bool
}

// TwoSites are the nodes of the tests' two-site scenarios
// (testdata/attach.yaml and the like), addressed as the lab would.
func TwoSites() []Node {
	return []Node{
		{Name: "dc1-cp", IP: "198.18.10.1", ControlPlane: true},
		{Name: "dc1-w", IP: "198.18.10.2"},
		{Name: "dc2-w", IP: "198.18.20.1"},
	}
}

// Nodes makes nodes, each Ready.
func Nodes(t *testing.T, cs kubernetes.Interface, nodes ...Node) {
	t.Helper()
	for _, nd := range nodes {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.Name}}
		if nd.ControlPlane {
			n.Labels = map[string]string{"node-role.kubernetes.io/control-plane": ""}
		}
		n, err := cs.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{})
		require.NoError(t, err)
		if nd.IP != "" {
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nd.IP}}
		}
		setReady(n, corev1.ConditionTrue)
		_, err = cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
}

// SetReady sets a node's Ready condition as its kubelet (True, False)
// or the node controller (Unknown: it stopped hearing from the kubelet)
// would.
func SetReady(t *testing.T, cs kubernetes.Interface, node string, st corev1.ConditionStatus) {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	require.NoError(t, err)
	setReady(n, st)
	_, err = cs.CoreV1().Nodes().UpdateStatus(t.Context(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func setReady(n *corev1.Node, st corev1.ConditionStatus) {
	reason := map[corev1.ConditionStatus]string{corev1.ConditionTrue: "KubeletReady",
		corev1.ConditionFalse: "KubeletNotReady", corev1.ConditionUnknown: "NodeStatusUnknown"}[st]
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: reason,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
}

// Pod is a pod of the adopter's that AdopterPod makes, Running on Node;
// one not Ready has restarted 4 times, as a crash-looping one would.
type Pod struct {
	Name, Node string
	Labels     map[string]string
	Ready      bool
}

// AdopterNamespace makes namespace adopter, where AdopterPod makes pods.
func AdopterNamespace(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	Namespace(t, cs, "adopter")
}

// Namespace makes a namespace with its default ServiceAccount, which pods
// need and no controller manager makes here.
func Namespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ServiceAccounts(name).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// AdopterPod makes a pod chaosloop did not create, in namespace adopter.
func AdopterPod(t *testing.T, cs kubernetes.Interface, p Pod) {
	t.Helper()
	pod, err := cs.CoreV1().Pods("adopter").Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{{Name: "c", Image: "registry.example/x:1"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	pod.Status.Phase = corev1.PodRunning
	st, reason, restarts := corev1.ConditionTrue, "", int32(0)
	if !p.Ready {
		st, reason, restarts = corev1.ConditionFalse, "ContainersNotReady", 4
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, Reason: reason}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: restarts}}
	_, err = cs.CoreV1().Pods("adopter").UpdateStatus(t.Context(), pod, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// AdopterPods makes namespace adopter with, for testdata/attach.yaml,
// pods chaosloop did not create: etcd-0 Ready on dc1-cp as the scenario
// places it; handlers-0 Ready on dc1-w, handlers-1 on dc1-w (the
// scenario has it on dc2-w) not Ready, and handlers-10, an extra; pods
// the selectors do not match beside them.
func AdopterPods(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	AdopterNamespace(t, cs)
	for _, p := range []Pod{
		{"handlers-10", "dc2-w", map[string]string{"app": "handlers"}, true},
		{"etcd-0", "dc1-cp", map[string]string{"app.kubernetes.io/name": "etcd"}, true},
		{"etcd-backup", "dc1-cp", map[string]string{"app.kubernetes.io/name": "etcd", "tier": "backup"}, true},
		{"handlers-1", "dc1-w", map[string]string{"app": "handlers"}, false},
		{"handlers-0", "dc1-w", map[string]string{"app": "handlers"}, true},
		{"other-0", "dc1-w", map[string]string{"app": "other"}, true},
	} {
		AdopterPod(t, cs, p)
	}
}

// WithAgents starts an API server (apitest) with nodes, each Ready, and
// a chaosloop agent of scenario on each node of agentsOn, confirming its
// rules as an agent does once they are in place (agenttest).
func WithAgents(t *testing.T, scenario string, nodes []Node, agentsOn ...string) (*apitest.Server, kubernetes.Interface) {
	t.Helper()
	return WithAgentsHeld(t, scenario, nodes, nil, agentsOn...)
}

// WithAgentsHeld is WithAgents whose agents confirm nothing while held
// (nil: never) is true (agenttest.ConfirmUnless).
func WithAgentsHeld(t *testing.T, scenario string, nodes []Node, held *atomic.Bool, agentsOn ...string) (*apitest.Server, kubernetes.Interface) {
	t.Helper()
	s := apitest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	Nodes(t, cs, nodes...)
	agenttest.RunAgents(t, cs, scenario, agentsOn...)
	agenttest.ConfirmUnless(t, cs, held)
	return s, cs
}
