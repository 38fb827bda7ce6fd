package k3slab

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// A real API server with testdata/handlers.yaml's nodes, agents that
// confirm every rule, and the adopter's handler pods, one per worker
// node, Ready. There is no kubelet: the tests set Ready themselves. The
// etcd probe through port-forward needs one: the kind test runs it.
func cluster(t *testing.T) (*k3s.Cluster, kubernetes.Interface) {
	return clusterHeld(t, nil)
}

// clusterHeld is cluster with agents that confirm nothing while held is
// true.
func clusterHeld(t *testing.T, held *atomic.Bool) (*k3s.Cluster, kubernetes.Interface) {
	s, cs := k3stest.WithAgentsHeld(t, "k3stest", k3stest.TwoSites(), held, "dc1-cp", "dc1-w", "dc2-w")
	k3stest.AdopterNamespace(t, cs)
	for name, node := range map[string]string{"handlers-0": "dc1-w", "handlers-1": "dc2-w"} {
		k3stest.AdopterPod(t, cs, k3stest.Pod{Name: name, Node: node, Labels: map[string]string{"app": "handlers"}, Ready: true})
	}
	c, err := k3s.NewCluster(enginetest.Log(t), s.Config, s.Context)
	require.NoError(t, err)
	return c, cs
}

func up(t *testing.T, c *k3s.Cluster) *Lab {
	sc, err := scenarios.Parse("testdata/handlers.yaml")
	require.NoError(t, err)
	p := NewProvider(Options{Cluster: c, Log: enginetest.Log(t), Ready: 10 * time.Second, Interval: 100 * time.Millisecond})
	require.Equal(t, Observing, p.Capabilities().Observing)
	require.Contains(t, p.Capabilities().Actions, scenarios.ActionPause, "the node agents freeze a member's pod")
	require.NotContains(t, p.Capabilities().Actions, scenarios.ActionPowerOff, "no BMC inventory")
	lb, err := p.Up(t.Context(), sc)
	require.NoError(t, err)
	l := lb.(*Lab)
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l
}

// The handlers observed from their pods, in the scenario's member order
// and on its nodes; a pod that turns NotReady is a member down.
func TestObserveAttachedPods(t *testing.T) {
	c, cs := cluster(t)
	l := up(t, c)
	si, err := l.ServiceStatus(t.Context(), "handlers")
	require.NoError(t, err)
	require.True(t, si.Healthy)
	require.True(t, si.Writable)
	require.Len(t, si.Members, 2)
	require.Equal(t, "handlers-1", si.Members[1].Name)
	require.Equal(t, "dc2-w", si.Members[1].Node)
	obs, up, _ := lab.Observe(si)
	require.Equal(t, "ok", obs)
	require.Equal(t, 2, up)

	require.NoError(t, cs.CoreV1().Pods("adopter").Delete(t.Context(), "handlers-1", metav1.DeleteOptions{}))
	si, err = l.ServiceStatus(t.Context(), "handlers")
	require.NoError(t, err)
	require.False(t, si.Healthy)
	require.Equal(t, "no pod", si.Members[1].Detail)
	obs, _, _ = lab.Observe(si)
	require.Equal(t, "degraded", obs)

	_, err = l.ServiceStatus(t.Context(), "ledger")
	require.Error(t, err)
	// the adopter's services take no load of chaosloop's
	eps, err := l.Endpoints("handlers")
	require.NoError(t, err)
	require.Empty(t, eps, "a stateless service has no endpoints")
	_, err = l.MySQLDSNs("ledger")
	require.EqualError(t, err, `unknown service "ledger"`)
	_, _, err = l.RedisSentinels("handlers")
	require.ErrorContains(t, err, "service handlers was not deployed by chaosloop")
	require.ErrorContains(t, l.StartWorkers(t.Context(), "handlers", lab.Worker{}), "the adopter's own (attached)")
}

// A fault's nodes may turn NotReady while its injection is under way
// (its agents slow to confirm the rules): that is the fault's doing, not
// a stop condition (a 12-node kind cluster under load was stopped so).
func TestStopConditionWaitsForAnInjection(t *testing.T) {
	held := &atomic.Bool{}
	held.Store(true)
	c, cs := clusterHeld(t, held)
	l := up(t, c)
	cut := lab.Fault{Action: scenarios.ActionIsolate, Target: "node/dc2-w"}
	injected := make(chan error, 1)
	go func() {
		_, err := l.Inject(t.Context(), cut)
		injected <- err
	}()
	time.Sleep(300 * time.Millisecond) // recorded, the agents not confirming
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionUnknown)
	select {
	case err := <-l.Stopped():
		t.Fatalf("stopped for the node of a fault being injected: %v", err)
	case err := <-injected:
		t.Fatalf("injected while no agent confirmed: %v", err)
	case <-time.After(3 * time.Second): // the guard looks every 100 ms (a stop is delivered once its recovery, which waits for the injection, ends)
	}
	held.Store(false)
	require.NoError(t, <-injected)
	require.Len(t, l.ActiveFaults(), 1)
	select {
	case err := <-l.Stopped():
		t.Fatalf("stopped for the node of a fault in place: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	require.NoError(t, l.Recover(t.Context(), cut))
}

// The stop conditions watch the lab: a node the fault cuts off may turn
// NotReady, also for a while after its recovery; a node outside the
// faults NotReady stops everything: every fault recovered, Stopped says
// why, and new faults are refused.
func TestStopConditionRecoversEveryFault(t *testing.T) {
	c, cs := cluster(t)
	l := up(t, c)
	cut := lab.Fault{Action: scenarios.ActionIsolate, Target: "node/dc2-w"}
	_, err := l.Inject(t.Context(), cut)
	require.NoError(t, err)
	require.Len(t, l.ActiveFaults(), 1)
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionUnknown)
	require.NoError(t, l.Recover(t.Context(), cut))
	require.Empty(t, l.ActiveFaults())
	// dc2-w still NotReady after the recovery: coming back, not a stop
	select {
	case err := <-l.Stopped():
		t.Fatalf("stopped for the node of a recovered fault: %v", err)
	case <-time.After(time.Second):
	}
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionTrue)
	// every node Ready again, then dc2-w NotReady after all (its kubelet
	// renews its lease late after a cut shorter than the node
	// controller's grace period): still the recovered fault's
	time.Sleep(500 * time.Millisecond) // looks that find every node Ready
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionUnknown)
	select {
	case err := <-l.Stopped():
		t.Fatalf("stopped for a node turning NotReady just after its fault's recovery: %v", err)
	case <-time.After(time.Second):
	}
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionTrue)

	_, err = l.Inject(t.Context(), cut)
	require.NoError(t, err)
	k3stest.SetReady(t, cs, "dc1-w", corev1.ConditionUnknown)
	var stop error
	select {
	case stop = <-l.Stopped():
	case <-time.After(30 * time.Second):
		t.Fatal("no stop within 30 s of dc1-w NotReady")
	}
	require.ErrorIs(t, stop, lab.ErrStopped)
	require.ErrorContains(t, stop, "node/dc1-w")
	require.ErrorContains(t, stop, "every fault recovered")
	active, err := nemesis.Active(t.Context(), c, "k3stest")
	require.NoError(t, err)
	require.Empty(t, active, "recovered on the cluster")
	_, err = l.Inject(t.Context(), lab.Fault{Action: scenarios.ActionIsolate, Target: "node/dc1-w"})
	require.True(t, errors.Is(err, lab.ErrStopped), "%v", err)
}
