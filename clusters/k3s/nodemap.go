package k3s

import (
	"io"
	"os"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/chaosloop/chaosloop/clusters/k3s/sidefile"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// MaxNodeMapBytes bounds a node map: a line a node, so 1 MiB holds tens
// of thousands of nodes and no more than that is read.
const MaxNodeMapBytes = 1 << 20

// NodeMap maps scenario nodes to cluster nodes. A scenario node it does
// not name is the cluster node of the same name.
type NodeMap map[string]string

// ClusterNode is the cluster node of a scenario node.
func (m NodeMap) ClusterNode(node string) string {
	if c, ok := m[node]; ok {
		return c
	}
	return node
}

// LoadNodeMap reads a node map file (YAML, `scenarioNode: clusterNode` a
// line) for the scenario's topology, reporting every problem in it with
// its file:line:column (scenarios.Errors).
func LoadNodeMap(file string, topo *topology.Topology) (NodeMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxNodeMapBytes+1))
	if err != nil {
		return nil, err
	}
	return ParseNodeMap(file, data, topo)
}

// ParseNodeMap decodes a node map strictly: a single flat mapping of
// strings, each key a scenario node, each value a valid node name, no
// cluster node claimed twice (by the map or by a scenario node keeping
// its own name).
func ParseNodeMap(file string, data []byte, topo *topology.Topology) (NodeMap, error) {
	p := &mapProblems{Problems: sidefile.Problems{File: file}}
	if len(data) > MaxNodeMapBytes {
		p.Add(scenarios.Pos{Line: 1, Column: 1}, "the file is longer than %d MiB, the most a node map may be", MaxNodeMapBytes>>20)
		return nil, p.Err()
	}
	root := sidefile.Document(&p.Problems, data, "node map", "at least one `scenarioNode: clusterNode` line")
	if root == nil {
		return nil, p.Err()
	}
	m := p.entries(root, topo)
	p.claims(m, topo)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return m.names(), nil
}

// mapEntry is one decoded line: the cluster node and where it was given.
type mapEntry struct {
	cluster string
	at      scenarios.Pos
}

type entries map[string]mapEntry

func (m entries) names() NodeMap {
	out := NodeMap{}
	for k, e := range m {
		out[k] = e.cluster
	}
	return out
}

// mapProblems are a node map's problems, with the checks that find them.
type mapProblems struct{ sidefile.Problems }

// entries checks each key and value on its own.
func (p *mapProblems) entries(root *yaml.Node, topo *topology.Topology) entries {
	m := entries{}
	if root.Kind != yaml.MappingNode {
		p.Add(sidefile.Pos(root), "a node map is a mapping of scenario node names to cluster node names (`dc1-r1-n1: worker-07`)")
		return m
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !p.isString(k, "a scenario node's name") || !p.isString(v, "a cluster node's name") {
			continue
		}
		if prev, dup := m[k.Value]; dup {
			p.Add(sidefile.Pos(k), "scenario node %q is mapped twice (first on line %d)", k.Value, prev.at.Line)
			continue
		}
		if topo.Node(k.Value) == nil {
			p.Add(sidefile.Pos(k), "%q is not a node of the scenario", k.Value)
			continue
		}
		if len(validation.IsDNS1123Subdomain(v.Value)) > 0 {
			p.Add(sidefile.Pos(v), "%q is not a valid Kubernetes node name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)", v.Value)
			continue
		}
		m[k.Value] = mapEntry{cluster: v.Value, at: sidefile.Pos(v)}
	}
	return m
}

// isString reports whether n is a plain, non-empty string, reporting it
// otherwise.
func (p *mapProblems) isString(n *yaml.Node, what string) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value != "" {
		return true
	}
	got := sidefile.KindName(n)
	if n.Kind == yaml.ScalarNode && n.Value == "" || n.Tag == "!!merge" {
		got = "empty"
	}
	if n.Tag == "!!merge" {
		got = "a merge key"
	}
	p.Add(sidefile.Pos(n), "%s must be a string, not %s", what, got)
	return false
}

// claims reports cluster nodes claimed by two scenario nodes: mapped to
// twice, or mapped to while a scenario node of that name keeps it.
func (p *mapProblems) claims(m entries, topo *topology.Topology) {
	by := map[string]string{}
	for _, n := range topo.Nodes {
		if _, mapped := m[n.Name]; !mapped {
			by[n.Name] = n.Name
		}
	}
	for _, n := range topo.Nodes {
		e, ok := m[n.Name]
		if !ok {
			continue
		}
		if other, taken := by[e.cluster]; taken {
			if _, mapped := m[other]; mapped {
				p.Add(e.at, "cluster node %q is mapped to twice: by scenario nodes %q and %q", e.cluster, other, n.Name)
			} else {
				p.Add(e.at, "cluster node %q is scenario node %q's by name: map %q to another cluster node too", e.cluster, other, other)
			}
			continue
		}
		by[e.cluster] = n.Name
	}
}
