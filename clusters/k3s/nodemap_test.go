package k3s

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Every problem of a node map, each at its file:line:column.
func TestNodeMapProblems(t *testing.T) {
	topo := testTopology(t)
	for _, tc := range []struct{ file, want string }{
		{"testdata/nodemap-invalid.yaml", "testdata/nodemap-invalid.golden"},
		{"testdata/nodemap-claims.yaml", "testdata/nodemap-claims.golden"},
	} {
		_, err := LoadNodeMap(tc.file, topo)
		var errs scenarios.Errors
		require.True(t, errors.As(err, &errs), "%v", err)
		var lines []string
		for _, e := range errs {
			lines = append(lines, e.Error())
		}
		golden(t, tc.want, strings.Join(lines, "\n")+"\n")
	}
}

func TestNodeMapShapes(t *testing.T) {
	topo := testTopology(t)
	for data, want := range map[string]string{
		"":                        "x:1:1: empty node map",
		"- dc1-cp\n":              "x:1:1: a node map is a mapping",
		"dc1-cp: a\n---\nb: c\n":  "x:2:1: a node map is one YAML document",
		"dc1-cp: [\n":             "x:1:9: invalid YAML: sequence end token",
		"dc1-cp: &a x\ndc1-w: *a": "x:2:8: a cluster node's name must be a string, not an alias",
		"dc1-cp: 12\n":            "x:1:9: a cluster node's name must be a string, not a number",
		"dc1-cp:\n":               "x:1:8: a cluster node's name must be a string, not empty",
	} {
		_, err := ParseNodeMap("x", []byte(data), topo)
		require.ErrorContains(t, err, want, "%q", data)
	}
	m, err := ParseNodeMap("x", []byte("dc1-cp: dc2-w\ndc2-w: dc1-cp\n"), topo)
	require.NoError(t, err, "two nodes may swap names")
	require.Equal(t, "dc2-w", m.ClusterNode("dc1-cp"))
	require.Equal(t, "dc1-w", m.ClusterNode("dc1-w"))
}

func TestNodeMapTooLong(t *testing.T) {
	topo := testTopology(t)
	f := t.TempDir() + "/big.yaml"
	require.NoError(t, os.WriteFile(f, []byte(strings.Repeat("#", MaxNodeMapBytes+1)), 0o644))
	_, err := LoadNodeMap(f, topo)
	require.ErrorContains(t, err, "longer than 1 MiB")
}
