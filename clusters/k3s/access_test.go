package k3s

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The context rail: never the current context unless named.
func TestConnectNeedsANamedContext(t *testing.T) {
	_, err := Connect(quiet(), Access{Kubeconfig: "testdata/kubeconfig.yaml"})
	require.True(t, IsContextError(err), "%v", err)
	require.EqualError(t, err, `no context named: chaosloop uses a cluster only through a context named with --context (the kubeconfig's current context, "prod", is not used unless named); contexts in testdata/kubeconfig.yaml: lab, prod`)

	_, err = Connect(quiet(), Access{Kubeconfig: "testdata/kubeconfig.yaml", Context: "staging"})
	require.True(t, IsContextError(err))
	require.EqualError(t, err, `no context "staging" in the kubeconfig; contexts in testdata/kubeconfig.yaml: lab, prod`)

	c, err := Connect(quiet(), Access{Kubeconfig: "testdata/kubeconfig.yaml", Context: "lab"})
	require.NoError(t, err)
	require.Equal(t, "lab", c.Context)
	require.Equal(t, "https://lab.invalid:6443", c.Server, "the named context's server, not the current one's")
}

// --kubeconfig unset: $KUBECONFIG, as kubectl reads it.
func TestConnectReadsKUBECONFIG(t *testing.T) {
	t.Setenv("KUBECONFIG", "testdata/kubeconfig.yaml")
	c, err := Connect(quiet(), Access{Context: "prod"})
	require.NoError(t, err)
	require.Equal(t, "https://prod.invalid:6443", c.Server)

	t.Setenv("KUBECONFIG", t.TempDir()+"/none")
	_, err = Connect(quiet(), Access{Context: "prod"})
	require.ErrorContains(t, err, "holds no contexts")
}

func TestConnectMissingFile(t *testing.T) {
	_, err := Connect(quiet(), Access{Kubeconfig: t.TempDir() + "/nope", Context: "x"})
	require.ErrorContains(t, err, "kubeconfig:")
	require.False(t, IsContextError(err))
}
