package chaosmesh

import (
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/chaosmesh/meshtest"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// TestAPIServerAcceptsExport runs meshtest.Accepts on the golden
// scenarios' exports: Chaos Mesh's CRDs installed in a real API server,
// every Workflow and chaos object created with strict field validation
// and stored as sent, hand-broken ones refused.
//
// The API server is apitest's (etcd and kube-apiserver on loopback), or,
// with CHAOSLOOP_K3S_KUBECONFIG set, that cluster (context
// CHAOSLOOP_K3S_CONTEXT, else the file's current one). The kind backend's
// test runs the same on its kind cluster.
func TestAPIServerAcceptsExport(t *testing.T) {
	meshtest.Accepts(t, apiCluster(t), func(t *testing.T, ns string) []meshtest.Case {
		// quickstart first: the refusals alter its NetworkChaos
		names := slices.Sorted(maps.Keys(goldenCases))
		i := slices.Index(names, "quickstart")
		names[0], names[i] = names[i], names[0]
		var cases []meshtest.Case
		for _, name := range names {
			sc, err := scenarios.Parse(goldenCases[name])
			require.NoError(t, err)
			ex, err := Build(sc, Options{Namespace: ns})
			require.NoError(t, err)
			cases = append(cases, meshtest.Case{Name: name, Workflow: ex.Workflow, Manifest: ex.Manifest()})
		}
		return cases
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
