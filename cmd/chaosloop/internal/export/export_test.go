package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const (
	examples = "../../../../scenarios/"
	golden   = "../../../../chaosmesh/testdata/"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// goldenWorkflow is the workflow of the chaosmesh package's golden file.
func goldenWorkflow(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(golden + name + ".golden.json")
	require.NoError(t, err)
	var g struct{ Workflow json.RawMessage }
	require.NoError(t, json.Unmarshal(b, &g))
	return string(g.Workflow)
}

// YAML by default (with a header comment), JSON with -o json, both the
// golden workflow; the approximations on stderr.
func TestChaosMesh(t *testing.T) {
	want := goldenWorkflow(t, "quickstart")
	code, out, stderr := run("export", "chaos-mesh", examples+"quickstart.yaml")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(out, "# Chaos Mesh Workflow of scenario quickstart"), out)
	var v any
	require.NoError(t, yaml.Unmarshal([]byte(out), &v))
	js, err := json.Marshal(v)
	require.NoError(t, err)
	require.JSONEq(t, want, string(js))
	require.Contains(t, stderr, "warning: approximations")
	require.Contains(t, stderr, "f0 power-off rack/dc1/r1: Chaos Mesh cannot cut a node's power")

	code, out, stderr = run("export", "chaos-mesh", "-o", "json", "-f", examples+"quickstart.yaml")
	require.Equal(t, 0, code, stderr)
	require.JSONEq(t, want, out)

	file := filepath.Join(t.TempDir(), "wf.yaml")
	code, out, stderr = run("export", "chaos-mesh", examples+"quickstart.yaml", "--out", file, "-n", "mojaloop")
	require.Equal(t, 0, code, stderr)
	require.Empty(t, out)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(b), "namespace: mojaloop")
}

// Exit 2, with a clear message, for a scenario without faults, an invalid
// one, and usage errors.
func TestChaosMeshErrors(t *testing.T) {
	code, out, stderr := run("export", "chaos-mesh", golden+"no-faults.yaml")
	require.Equal(t, cli.ExitInvalid, code)
	require.Empty(t, out)
	require.Equal(t, "chaosloop: scenario no-faults has no faults: section: nothing to export\n", stderr)

	code, _, stderr = run("export", "chaos-mesh", examples+"testdata/invalid-faults.yaml")
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, stderr, "invalid-faults.yaml:")

	for _, args := range [][]string{
		{"export", "chaos-mesh"},
		{"export", "chaos-mesh", "a.yaml", "b.yaml"},
		{"export", "chaos-mesh", examples + "quickstart.yaml", "-o", "text"},
		{"export", "kind-config", examples + "quickstart.yaml", "--bogus"},
	} {
		code, _, stderr := run(args...)
		require.Equal(t, cli.ExitInvalid, code, "%v: %s", args, stderr)
	}
}

// The kind configuration reads back strictly as kind's type, the header
// says what chaosloop adds; a scenario the kind backend refuses exits 2.
func TestKindConfig(t *testing.T) {
	code, out, stderr := run("export", "kind-config", examples+"kind-quickstart.yaml")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "# What chaosloop's kind backend does beyond this file")
	var c v1alpha4.Cluster
	require.NoError(t, sigsyaml.UnmarshalStrict([]byte(out), &c))
	require.Equal(t, "chaosloop-kind-quickstart", c.Name)
	require.Len(t, c.Nodes, 12)
	require.Equal(t, v1alpha4.ControlPlaneRole, c.Nodes[0].Role)
	require.Equal(t, "dc1", c.Nodes[0].Labels["topology.kubernetes.io/region"])
	require.Equal(t, "dc1-r1", c.Nodes[0].Labels["topology.kubernetes.io/zone"])

	code, out, stderr = run("export", "kind-config", "-o", "json", examples+"kind-quickstart.yaml")
	require.Equal(t, 0, code, stderr)
	var cj v1alpha4.Cluster
	require.NoError(t, json.Unmarshal([]byte(out), &cj))
	require.Equal(t, c, cj)

	code, _, stderr = run("export", "kind-config", examples+"three-site.yaml")
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, stderr, "24 nodes, at most 16")
}
