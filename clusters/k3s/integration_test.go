package k3s_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
)

// TestRealCluster runs k3stest's checks (a context must be named, plan
// only reads, label round trip, down deletes only the scenario's objects)
// against the cluster of $CHAOSLOOP_K3S_KUBECONFIG, through its current
// context (or $CHAOSLOOP_K3S_CONTEXT's, which must then be the current
// one). It changes nodes' chaosloop labels (put back afterwards) and
// creates and deletes objects of scenario k3stest.Scenario: run it on a
// test cluster. The kind backend's tests run the same checks on a kind
// cluster in CI.
func TestRealCluster(t *testing.T) {
	file := os.Getenv("CHAOSLOOP_K3S_KUBECONFIG")
	if file == "" {
		t.Skip("CHAOSLOOP_K3S_KUBECONFIG names no kubeconfig")
	}
	name := os.Getenv("CHAOSLOOP_K3S_CONTEXT")
	if name == "" {
		raw, err := clientcmd.LoadFromFile(file)
		require.NoError(t, err)
		require.NotEmpty(t, raw.CurrentContext, "set CHAOSLOOP_K3S_CONTEXT")
		name = raw.CurrentContext
	}
	k3stest.RealCluster(t, file, name)
}
