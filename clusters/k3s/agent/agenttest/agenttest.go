// Package agenttest stands in for the node agents on an API server with
// no kubelet (package apitest): agent pods that are Running, and the
// status an agent reports once it has applied its rules. Only the
// orchestration around the agents is tested with it; the agent itself is
// tested with real iptables (package agent's lab test, and kind's).
package agenttest

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
)

// RunAgents makes a Running agent pod of scenario on each node (there is
// no kubelet: its status is set).
func RunAgents(t *testing.T, cs kubernetes.Interface, scenario string, nodes ...string) {
	ctx := t.Context()
	m, err := agent.NewManifest("registry.example/chaosloop:v1", scenario)
	require.NoError(t, err)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, m.Namespace, metav1.CreateOptions{}); err != nil {
		require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(k3s.Namespace).Create(ctx, m.ServiceAccount, metav1.CreateOptions{}); err != nil {
		require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	}
	for _, node := range nodes {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: agent.Name + "-" + node, Namespace: k3s.Namespace, Labels: m.DaemonSet.Spec.Template.Labels},
			Spec: *m.DaemonSet.Spec.Template.Spec.DeepCopy()}
		pod.Spec.NodeName = node
		pod, err = cs.CoreV1().Pods(k3s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		pod.Status.Phase = corev1.PodRunning
		_, err = cs.CoreV1().Pods(k3s.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
}

// Confirm reports, every 50 ms until the test ends, each node's desired
// state applied at its generation, as an agent does once its rules are in
// place.
func Confirm(t *testing.T, cs kubernetes.Interface) { ConfirmUnless(t, cs, nil) }

// ConfirmUnless is Confirm, holding every confirmation back while held
// (nil: never) is true, as agents slow to apply their rules would.
func ConfirmUnless(t *testing.T, cs kubernetes.Interface, held *atomic.Bool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			if held == nil || !held.Load() {
				confirmOnce(ctx, cs)
			}
		}
	}()
}

func confirmOnce(ctx context.Context, cs kubernetes.Interface) {
	cms := cs.CoreV1().ConfigMaps(k3s.Namespace)
	list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: agent.ComponentLabel + "=" + agent.ComponentFaults})
	if err != nil {
		return
	}
	for _, cm := range list.Items {
		gen, _ := strconv.ParseInt(cm.Annotations[agent.GenerationAnnotation], 10, 64)
		var rules []agent.Rule
		_ = json.Unmarshal([]byte(cm.Data[agent.RulesKey]), &rules)
		applied := []string{}
		for _, r := range rules {
			applied = append(applied, r.ID)
		}
		b, _ := json.Marshal(agent.Status{Generation: gen, Applied: applied, Time: time.Now()})
		node := cm.Labels[agent.NodeLabel]
		st := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: agent.StatusName(node), Namespace: k3s.Namespace}, Data: map[string]string{agent.StatusKey: string(b)}}
		if _, err := cms.Update(ctx, st, metav1.UpdateOptions{}); err != nil {
			_, _ = cms.Create(ctx, st, metav1.CreateOptions{})
		}
	}
}
