package deploy

import (
	"context"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

const scenario = "deploy-test"

func member(node string) engines.Member {
	return engines.Member{
		Name: "etcd-0", Node: node, Addr: netip.MustParseAddr("198.18.10.1"), PortOffset: DefaultPortOffset,
		DataDir: Root(scenario) + "/etcd-0/data", LogDir: Root(scenario) + "/etcd-0/log",
	}
}

func etcdSpec(m engines.Member) proc.Spec {
	return proc.Spec{Name: m.Name + ".etcd", Path: "/usr/bin/etcd", Args: []string{"--name", m.Name},
		Dir: m.DataDir, Log: m.LogDir + "/etcd.log", Env: []string{"ETCD_X=a=b"}}
}

func TestPodOfAMember(t *testing.T) {
	p := &Pods{Scenario: scenario, Service: "etcd", Image: "registry.example/chaosloop/engine-etcd:v1",
		NodeMap: k3s.NodeMap{"dc1-cp": "server-1"}}
	m := member("dc1-cp")
	pod, err := p.Pod(m, etcdSpec(m))
	require.NoError(t, err)
	assert.Equal(t, "etcd-0.etcd", pod.Name)
	assert.Equal(t, k3s.Namespace, pod.Namespace)
	assert.Equal(t, k3s.ManagedBy, pod.Labels[k3s.LabelManagedBy], "down finds it")
	assert.Equal(t, scenario, pod.Labels[k3s.LabelScenario])
	assert.Equal(t, "etcd-0", pod.Labels[LabelMember])
	assert.Equal(t, "server-1", pod.Spec.NodeName, "pinned to the scenario node's cluster node")
	assert.True(t, pod.Spec.HostNetwork, "the member's address is its node's")
	assert.Equal(t, corev1.RestartPolicyNever, pod.Spec.RestartPolicy, "the engine restarts it, not the kubelet")
	c := pod.Spec.Containers[0]
	assert.Equal(t, "registry.example/chaosloop/engine-etcd:v1", c.Image)
	assert.Equal(t, []string{"sh", "-c", `exec "$0" "$@" >>'/var/lib/chaosloop/deploy-test/etcd-0/log/etcd.log' 2>&1`, "/usr/bin/etcd", "--name", "etcd-0"}, c.Command)
	assert.Equal(t, []corev1.EnvVar{{Name: "ETCD_X", Value: "a=b"}}, c.Env)
	var paths []string
	for _, v := range pod.Spec.Volumes {
		paths = append(paths, v.HostPath.Path)
	}
	assert.Equal(t, []string{Root(scenario) + "/etcd-0/data", Root(scenario) + "/etcd-0/log"}, paths)
	for i, vm := range c.VolumeMounts {
		assert.Equal(t, paths[i], vm.MountPath, "at the same path")
	}

	m.DataDir = "/etc"
	_, err = p.Pod(m, etcdSpec(m))
	require.ErrorContains(t, err, "/etc is not under /var/lib/chaosloop/deploy-test")
	p.Scenario = "Not_A_Label"
	_, err = p.Pod(member("dc1-cp"), etcdSpec(member("dc1-cp")))
	require.ErrorContains(t, err, "cannot label chaosloop's objects")
}

// kubelet plays the kubelet of an API server without one (apitest): it
// reports each new pod of chaosloop's in state, once.
func kubelet(t *testing.T, cs kubernetes.Interface, state corev1.ContainerState) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := cs.CoreV1().Pods(k3s.Namespace).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || len(pod.Status.ContainerStatuses) > 0 || pod.DeletionTimestamp != nil {
				continue
			}
			pod.Status.Phase = corev1.PodRunning
			if state.Terminated != nil {
				pod.Status.Phase = corev1.PodFailed
			}
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: MainContainer, State: state}}
			_, _ = cs.CoreV1().Pods(k3s.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		}
	}()
}

func onAPIServer(t *testing.T) (*Pods, kubernetes.Interface) {
	s := apitest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	k3stest.Nodes(t, cs, k3stest.TwoSites()...)
	k3stest.Namespace(t, cs, k3s.Namespace)
	return &Pods{Cluster: &k3s.Cluster{Client: cs, Config: s.Config}, Scenario: scenario, Service: "etcd",
		Image: "registry.example/engine-etcd:v1", Margin: time.Second}, cs
}

// TestPodsOnAnAPIServer: the launcher's pods as the API server has them,
// with the kubelet's part played by the test.
func TestPodsOnAnAPIServer(t *testing.T) {
	p, cs := onAPIServer(t)
	ctx := t.Context()
	kubelet(t, cs, corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})
	m := member("dc1-cp")
	where, err := p.Start(ctx, m, etcdSpec(m))
	require.NoError(t, err)
	assert.Equal(t, "pod chaosloop/etcd-0.etcd on dc1-cp", where)
	assert.True(t, p.Alive(ctx, "etcd-0.etcd"))
	procs, err := p.Processes(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, []string{"etcd-0.etcd"}, procs)

	// Started again, the pod is made anew.
	before, err := cs.CoreV1().Pods(k3s.Namespace).Get(ctx, "etcd-0.etcd", metav1.GetOptions{})
	require.NoError(t, err)
	_, err = p.Start(ctx, m, etcdSpec(m))
	require.NoError(t, err)
	after, err := cs.CoreV1().Pods(k3s.Namespace).Get(ctx, "etcd-0.etcd", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotEqual(t, before.UID, after.UID)

	require.ErrorIs(t, p.Signal(ctx, "etcd-0.etcd", syscall.SIGSTOP), ErrSignal, "pause is the agent's freeze")
	require.NoError(t, p.Signal(ctx, "etcd-0.etcd", syscall.SIGKILL))
	assert.False(t, p.Alive(ctx, "etcd-0.etcd"))
	require.ErrorIs(t, p.Signal(ctx, "etcd-0.etcd", syscall.SIGKILL), os.ErrProcessDone)

	// Stop: no kubelet confirms the deletion here, as a node that does
	// not answer would not, so the pod goes forcibly after the margin.
	_, err = p.Start(ctx, m, etcdSpec(m))
	require.NoError(t, err)
	require.NoError(t, p.Stop(ctx, "etcd-0.etcd", time.Second))
	_, err = cs.CoreV1().Pods(k3s.Namespace).Get(ctx, "etcd-0.etcd", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)
	require.NoError(t, p.Stop(ctx, "etcd-0.etcd", time.Second), "nothing running is nothing to stop")

	// status: the member's pod observed, member 0 by its label
	sc, err := scenarios.Parse("../testdata/deploy.yaml")
	require.NoError(t, err)
	tp, err := topology.Build(sc)
	require.NoError(t, err)
	p.Scenario = tp.Name
	m0 := member("dc1-cp")
	m0.Name, m0.DataDir, m0.LogDir = "etcd-0", Root(tp.Name)+"/etcd-0/data", Root(tp.Name)+"/etcd-0/log"
	_, err = p.Start(ctx, m0, etcdSpec(m0))
	require.NoError(t, err)
	as, err := Observe(ctx, p.Cluster, tp, nil, tp.Service("etcd"), nil)
	require.NoError(t, err)
	require.Len(t, as.Members, 1)
	assert.Equal(t, k3s.AttachedMember{Index: 0, Pod: "etcd-0.etcd", Node: "dc1-cp", Want: "dc1-cp", Running: true, NotReady: "no Ready condition"}, as.Members[0])
	assert.Equal(t, []string{"1 pods match, the scenario has 3 members"}, as.Findings)
	assert.False(t, as.Healthy(), "no kubelet forwards to it here: %+v", as.Engine)
}

func TestPodThatEnds(t *testing.T) {
	p, cs := onAPIServer(t)
	kubelet(t, cs, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}})
	m := member("dc2-w")
	_, err := p.Start(t.Context(), m, etcdSpec(m))
	require.ErrorContains(t, err, "pod chaosloop/etcd-0.etcd: its process ended (terminated: Error, exit code 2)")
	require.ErrorIs(t, err, errEnded)
}

// A one-shot command's pod (Kafka's storage format) runs to its end; one
// that fails says how, and its pod goes either way. It is never taken for
// the member's process.
func TestOneShotPod(t *testing.T) {
	p, cs := onAPIServer(t)
	ctx := t.Context()
	seen := make(chan map[string]string, 1)
	w, err := cs.CoreV1().Pods(k3s.Namespace).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	defer w.Stop()
	kubelet(t, cs, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}})
	m := member("dc2-w")
	spec := proc.Spec{Name: "kafka-0.kafka-format", Path: "java", Args: []string{"kafka.tools.StorageTool"}, Dir: m.DataDir}
	go func() {
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				seen <- pod.Labels
				return
			}
		}
	}()
	_, err = p.Run(ctx, m, spec)
	require.ErrorContains(t, err, "pod chaosloop/kafka-0.kafka-format (java): terminated: Error, exit code 1")
	labels := <-seen
	assert.Equal(t, "true", labels[LabelOnce])
	sel, err := MemberSelector(scenario, m.Name)
	require.NoError(t, err)
	assert.Contains(t, sel, "!"+LabelOnce, "the nemesis and probes never pick it")
	_, err = cs.CoreV1().Pods(k3s.Namespace).Get(ctx, "kafka-0.kafka-format", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the pod went: %v", err)
}

// TestAliveAfterAListOfAStartingPod: a list of the service's pods taken
// while a pod was starting (a probe's status beside the start) does not
// make Alive say the pod is not running once it runs (the start's own
// wait asks next).
func TestAliveAfterAListOfAStartingPod(t *testing.T) {
	p, cs := onAPIServer(t)
	ctx := t.Context()
	m := member("dc1-cp")
	pod, err := p.Pod(m, etcdSpec(m))
	require.NoError(t, err)
	pod, err = cs.CoreV1().Pods(k3s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	require.False(t, p.Alive(ctx, pod.Name), "pending: no kubelet has started it")

	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: MainContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	_, err = cs.CoreV1().Pods(k3s.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.True(t, p.Alive(ctx, pod.Name), "it runs, whatever the list said a moment ago")
}
