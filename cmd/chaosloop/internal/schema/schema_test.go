package schema_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
	"github.com/chaosloop/chaosloop/scenarios"
)

const dir = "../../../../scenarios/"

// exceptions are the files the binary rejects and the JSON Schema accepts,
// each with the rule the schema cannot express. Every other file must get
// the same verdict from both; an exception that the schema starts to catch
// fails the test too, so the list stays exact.
var exceptions = map[string]string{
	"testdata/invalid-controller.yaml": "cross-field: a kafka controller must name a zookeeper service, and is required with several",
	"testdata/invalid-references.yaml": "cross-field: pools carried by no node, placement on unknown nodes or nodes without the pool, targets naming nothing",
	"testdata/invalid-bound-exact.yaml": "exact bounds of durations and sizes: a pattern limits each number's digits to what the maximum needs " +
		"(7200h is refused), but 721h has as many digits as 720h",
	"testdata/invalid-cross-field.yaml": "cross-field: duplicate names, replicas beyond the nodes carrying the pool, replicationFactor above replicas, " +
		"a fault after the load ends, a link joining a site to itself in a target, a member index beyond replicas",
}

// TestSchemaAgreesWithValidate runs `chaosloop schema` and checks every
// example and testdata file against its output with a real JSON Schema
// validator: a file is schema-valid exactly when `chaosloop validate`
// accepts it (exit 0 or 1, not 2), but for the documented exceptions.
func TestSchemaAgreesWithValidate(t *testing.T) {
	sch := compile(t)
	files, _ := filepath.Glob(dir + "testdata/*.yaml")
	examples, _ := filepath.Glob(dir + "*.yaml")
	files = append(files, examples...)
	require.GreaterOrEqual(t, len(files), 25)
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimPrefix(f, dir)
		t.Run(name, func(t *testing.T) {
			code, _, stderr := run("validate", f)
			valid := code != cli.ExitInvalid
			require.Equal(t, strings.HasPrefix(filepath.Base(f), "invalid-"), !valid, "exit %d: %s", code, stderr)
			serr := schemaCheck(t, sch, f)
			if why, ok := exceptions[name]; ok {
				seen[name] = true
				require.NoError(t, serr, "a documented exception (%s) that the schema now catches: drop it from the list", why)
				return
			}
			if valid {
				require.NoError(t, serr, "validate accepts the file, the schema does not")
			} else {
				require.Error(t, serr, "validate refuses the file, the schema accepts it:\n%s", stderr)
			}
		})
	}
	for name := range exceptions {
		require.True(t, seen[name], "exception %s names no file", name)
	}
}

// TestSchemaBoundsAgree sets every bounded field of a valid scenario to the
// edges of its range, from the rules table: at the bounds both accept,
// beyond them both refuse. Durations and sizes just above their maximum are
// the one exception (see exceptions): only validate refuses them.
func TestSchemaBoundsAgree(t *testing.T) {
	sch := compile(t)
	for _, r := range scenarios.Rules() {
		for _, c := range edges(r) {
			t.Run(fmt.Sprintf("%s=%v", r.Path, c.value), func(t *testing.T) {
				doc := base(strings.HasPrefix(r.Path, "services"))
				set(doc, strings.Split(strings.ReplaceAll(r.Path, "[]", ".0"), "."), c.value)
				data, err := yaml.Marshal(doc)
				require.NoError(t, err)
				_, perr := parse(data)
				serr := validateInstance(sch, data)
				require.Equal(t, c.valid, perr == nil, "validate: %v", perr)
				if c.onlyValidate {
					require.NoError(t, serr, "the schema now refuses it: tighten this test")
					return
				}
				require.Equal(t, c.valid, serr == nil, "schema: %v", serr)
			})
		}
	}
}

// TestSchemaCases: the forms where the schema and validate used to
// disagree, and other corners, one change to a valid scenario each.
func TestSchemaCases(t *testing.T) {
	sch := compile(t)
	for _, c := range []struct {
		name, yaml string
		valid      bool
	}{
		{"warmup 0", "load: {warmup: 0}", true},
		{"warmup 0.0", "load: {warmup: 0.0}", true},
		{"warmup 5 (no unit)", "load: {warmup: 5}", false},
		{"duration .5s", "load: {duration: .5s}", true},
		{"duration 1h30m", "load: {duration: 1h30m}", true},
		{"duration +5s", "load: {duration: +5s}", false},
		{"duration 99999999999h", "load: {duration: 99999999999h}", false},
		{"duration 0s", "load: {duration: 0s}", false},
		{"empty sections", "links:\nservices:\nload:\nfaults:\nexpect:", true},
		{"empty load mapping", "load: {}", true},
		{"replicas 1.0", "services: [{name: s, kind: stateless, pool: P, replicas: 1.0}]", true},
		{"replicas 2.5", "services: [{name: s, kind: stateless, pool: P, replicas: 2.5}]", false},
		{"replicas 1e0", "services: [{name: s, kind: stateless, pool: P, replicas: 1e0}]", true},
		{"partitions 1e18", "services: [{name: k, kind: kafka, pool: P, replicas: 1, partitions: 1e18}]", false},
		{"name with /", "name: a/b", false},
		{"name a number", "name: 1", false},
		{"description a date", "description: 2024-01-01", true},
		{"memory 500m", "sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: n, pools: [P], memory: 500m}]}]}]", false},
		{"memory 500M", "sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: n, pools: [P], memory: 500M}]}]}]", true},
		{"memory 1.5 bytes", "sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: n, pools: [P], memory: 1.5}]}]}]", false},
		{"memory in bytes", "sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: n, pools: [P], memory: 1024}]}]}]", true},
		{"partitions on etcd", "services: [{name: e, kind: etcd, pool: P, replicas: 1, partitions: 3}]", false},
		{"replication on redis", "services: [{name: e, kind: redis, pool: P, replicas: 1, replication: async}]", false},
		{"latency fault without delay", "faults: [{at: 1s, action: latency, target: node/n}]", false},
		{"latency fault with loss only", "faults: [{at: 1s, action: latency, target: node/n, loss: 0.1}]", true},
		{"delay on a kill", "services: [{name: s, kind: stateless, pool: P, replicas: 1}]\nfaults: [{at: 1s, action: kill, target: service/s, delay: 1s}]", false},
		{"kill a rack", "faults: [{at: 1s, action: kill, target: rack/s/r}]", false},
		{"power-off a feed", "faults: [{at: 1s, action: power-off, target: feed/p}]", true},
		{"target service/s/01", "services: [{name: s, kind: stateless, pool: P, replicas: 1}]\nfaults: [{at: 1s, action: kill, target: service/s/01}]", false},
		{"failover map", "services: [{name: s, kind: stateless, pool: P, replicas: 1}]\nexpect: {failover: {s: 20s}}", true},
		{"failover 0s", "expect: {failover: 0s}", false},
		{"power listed twice", "sites: [{name: s, racks: [{name: r, power: [p, p], switches: [w], nodes: [{name: n, pools: [P]}]}]}]", false},
		{"merge key", "load: {<<: {rate: 5}}", false},
		{"unknown field", "lod: {}", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := withMinimal(t, c.yaml)
			_, perr := parse(data)
			require.Equal(t, c.valid, perr == nil, "validate: %v", perr)
			require.Equal(t, c.valid, validateInstance(sch, data) == nil, "schema")
		})
	}
}

// minimal is a valid scenario, as top-level entries, that each case
// extends: a case's own top-level keys replace these.
var minimal = []struct{ key, text string }{
	{"name", "name: cases"},
	{"sites", "sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: n, pools: [P]}]}]}]"},
}

// withMinimal writes the case's YAML after the minimal entries it does not
// replace, keeping its text as written (1.0 stays a float).
func withMinimal(t *testing.T, fragment string) []byte {
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(fragment), &n))
	own := map[string]bool{}
	for i := 0; i < len(n.Content[0].Content); i += 2 {
		own[n.Content[0].Content[i].Value] = true
	}
	var b strings.Builder
	for _, e := range minimal {
		if !own[e.key] {
			b.WriteString(e.text + "\n")
		}
	}
	b.WriteString(fragment + "\n")
	return []byte(b.String())
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// compile compiles `chaosloop schema`'s output.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	code, out, stderr := run("schema")
	require.Equal(t, 0, code, stderr)
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	const url = "https://chaosloop.dev/schemas/scenario.json"
	require.NoError(t, c.AddResource(url, doc))
	sch, err := c.Compile(url)
	require.NoError(t, err)
	return sch
}

func schemaCheck(t *testing.T, sch *jsonschema.Schema, file string) error {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	return validateInstance(sch, data)
}

func parse(data []byte) (*scenarios.Scenario, error) {
	f, err := os.CreateTemp("", "case-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		return nil, err
	}
	f.Close()
	return scenarios.Parse(f.Name())
}

// validateInstance validates a YAML document as an editor does: converted to
// the JSON value YAML gives it. What is not one JSON value (a syntax error,
// several documents, duplicate or non-scalar keys) is an error too.
func validateInstance(sch *jsonschema.Schema, data []byte) error {
	v, err := instance(data)
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

func instance(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one document")
	}
	return value(doc.Content[0])
}

// value is a node's JSON value: each scalar as YAML resolves it (a date is
// a string, as in YAML 1.2); a merge key stays a key.
func value(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return value(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key that is not a scalar", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := value(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := value(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!merge":
		return n.Value, nil
	case "!!null", "!!bool", "!!int", "!!float":
		var v any
		err := n.Decode(&v)
		return v, err
	}
	return nil, fmt.Errorf("line %d: unsupported tag %s", n.Line, n.Tag)
}

// edge is one value of a bounds test.
type edge struct {
	value any
	valid bool
	// onlyValidate: validate refuses it, the schema cannot (a documented
	// exception).
	onlyValidate bool
}

// edges are the values at and beyond a field's bounds. A duration or size
// with one more digit than its maximum is refused by both; the maximum plus
// one in its largest unit only by validate.
func edges(r scenarios.Rule) []edge {
	switch fieldType(r.Path) {
	case reflect.TypeFor[*int]():
		lo := int64(r.Min)
		if r.Exclusive {
			lo++
		}
		return []edge{{lo, true, false}, {lo - 1, false, false}, {int64(r.Max), true, false}, {int64(r.Max) + 1, false, false}}
	case reflect.TypeFor[*float64]():
		out := []edge{{r.Max, true, false}, {r.Max + 0.5, false, false}, {r.Min - 1, false, false}}
		if r.Exclusive {
			return append(out, edge{r.Min, false, false}, edge{r.Min + 0.5, true, false})
		}
		return append(out, edge{r.Min, true, false})
	case reflect.TypeFor[*scenarios.Duration](), reflect.TypeFor[*scenarios.Failover]():
		max := time.Duration(r.Max).String()
		return append(beyond(max), edge{max, true, false}, edge{"-1s", false, false}, edge{"0s", !r.Exclusive, false})
	case reflect.TypeFor[*scenarios.Quantity]():
		max := size(int64(r.Max))
		return append(beyond(max), edge{max, true, false}, edge{"0", true, false}, edge{int64(r.Max), true, false},
			edge{int64(r.Max) + 1, false, false}, edge{"-1", false, false})
	}
	return nil
}

// beyond returns max with its leading number ten times larger (refused by
// both) and one larger (by validate only).
func beyond(max string) []edge {
	i := strings.IndexFunc(max, func(r rune) bool { return r < '0' || r > '9' })
	n, _ := strconv.Atoi(max[:i])
	return []edge{{max[:i] + "0" + max[i:], false, false}, {strconv.Itoa(n+1) + max[i:], false, true}}
}

// size writes bytes with the largest binary suffix that divides them.
func size(b int64) string {
	for i, s := range []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"} {
		if u := int64(1) << (10 * (6 - i)); b%u == 0 {
			return strconv.FormatInt(b/u, 10) + s
		}
	}
	return strconv.FormatInt(b, 10)
}

// fieldType is the Go type of the field a rule path names.
func fieldType(path string) reflect.Type {
	t := reflect.TypeFor[scenarios.Scenario]()
	for _, seg := range strings.Split(path, ".") {
		name, list := strings.CutSuffix(seg, "[]")
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		f, ok := fieldByYAML(t, name)
		if !ok {
			panic("no field " + path)
		}
		t = f.Type
		if list {
			t = t.Elem()
		}
	}
	return t
}

func fieldByYAML(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); n == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// base is a valid scenario in which every bounded field can be set: a
// kafka service (on as many nodes as replicas allows, when many), a latency
// fault. set adds load and expect.
func base(many bool) map[string]any {
	nodes := make([]any, 1)
	if many {
		nodes = make([]any, scenarios.MaxReplicas)
	}
	for i := range nodes {
		nodes[i] = map[string]any{"name": fmt.Sprintf("n%d", i), "pools": []any{"P"}}
	}
	rack := func(feed, sw string, nodes []any) []any {
		return []any{map[string]any{"name": "r", "power": []any{feed}, "switches": []any{sw}, "nodes": nodes}}
	}
	return map[string]any{
		"name": "bounds",
		"sites": []any{
			map[string]any{"name": "s1", "racks": rack("p1", "w1", nodes)},
			map[string]any{"name": "s2", "racks": rack("p2", "w2", []any{map[string]any{"name": "m"}})},
		},
		"links":    []any{map[string]any{"between": []any{"s1", "s2"}}},
		"services": []any{map[string]any{"name": "k", "kind": "kafka", "pool": "P", "replicas": len(nodes)}},
		"faults":   []any{map[string]any{"at": "0s", "action": "latency", "target": "node/n0", "delay": "1ms"}},
	}
}

// set stores value at the path (list indexes as numbers) of doc, adding
// missing mappings.
func set(doc any, path []string, value any) {
	for _, seg := range path[:len(path)-1] {
		switch d := doc.(type) {
		case map[string]any:
			if d[seg] == nil {
				d[seg] = map[string]any{}
			}
			doc = d[seg]
		case []any:
			i, _ := strconv.Atoi(seg)
			doc = d[i]
		}
	}
	doc.(map[string]any)[path[len(path)-1]] = value
}
