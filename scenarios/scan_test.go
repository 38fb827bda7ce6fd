package scenarios

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// parsed returns the collection nesting and the value count of every
// document yaml.v3 parses in data (up to its first error), and whether it
// parsed them all.
func parsed(data []byte) (depth, values int, ok bool) {
	var walk func(n *yaml.Node, d int)
	walk = func(n *yaml.Node, d int) {
		values++
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			d++
			depth = max(depth, d)
		}
		for _, c := range n.Content {
			walk(c, d)
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err != nil {
			return depth, values, errors.Is(err, io.EOF)
		}
		for _, c := range doc.Content {
			walk(c, 0)
		}
	}
}

// scanSeeds are inputs where a tokeniser is easily wrong about YAML.
var scanSeeds = []string{
	"a: b\n  [c, [d]]\n",                    // a plain scalar's continuation line is text
	"a: |\n  [[[\n  - x\nb: [[c]]\n",        // block scalar content
	"a: >2\n   x\n  y\nb: 1\n",              // explicit indentation
	"- |\n x\n- [y]\n",                      // a block scalar in a list
	"a:\n- b\n- c: [d]\ne:\n- f\n",          // lists at their key's indentation
	"[a]: b\n? [c, d]\n: e\n",               // collections as keys
	"[[a]: b, {c: d}: e]\n",                 // implicit single-pair mappings
	"a: \"x\\\"y [\"\nb: 'it''s ['\n",       // escaped quotes
	"a: b # [c\nd: e#[f\n",                  // comments and a '#' inside a scalar
	"--- [a]\n--- {b: c}\n...\n---\nd: e\n", // several documents
	"a: &x [1, 2]\nb: *x\nc: !!str [d]\n",
	"a: \"multi\n  line [\n  string\"\nb: [x]\n",
	"- - - a\n  - b\n- c\n",
	"a:\r\n  - b\r\n  - [c]\r\n",
	"\ufeffa: [b]\n",
	"? [b,\n  c]\n: d\n",
	"a: b:c\nd: http://x/[y]\n",
}

func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("*.yaml")
	for _, p := range append(files, examples...) {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 || checkText(data) != nil {
			return
		}
		sc, lim := scan(data)
		if lim != nil {
			return
		}
		// Deep input passing the scanner could exhaust a parser: the
		// scanner must never see less than yaml.v3 builds.
		depth, values, _ := parsed(data)
		if depth > sc.depth || values > sc.values {
			t.Fatalf("yaml.v3 parsed depth %d and %d values; the scanner saw depth %d and %d values", depth, values, sc.depth, sc.values)
		}
	})
}

func TestScanCounts(t *testing.T) {
	for _, s := range scanSeeds {
		sc, lim := scan([]byte(s))
		require.Nil(t, lim, s)
		depth, values, ok := parsed([]byte(s))
		require.True(t, ok, "seed %q must be valid YAML", s)
		require.GreaterOrEqual(t, sc.depth, depth, s)
		require.GreaterOrEqual(t, sc.values, values, s)
		require.Nil(t, sc.problem, s)
	}
}

func TestScanLimits(t *testing.T) {
	deep := "a: " + strings.Repeat("[", 40000)
	_, lim := scan([]byte(deep))
	require.NotNil(t, lim)
	require.Equal(t, Pos{1, 4 + (MaxDepth-1)/2}, lim.Pos, lim.Msg)

	block := strings.Repeat("- ", 1000)
	_, lim = scan([]byte(block))
	require.NotNil(t, lim)
	require.Equal(t, Pos{1, 2*MaxDepth + 1}, lim.Pos, lim.Msg)

	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	_, lim = scan([]byte(b.String()))
	require.NotNil(t, lim)
	require.Equal(t, Pos{MaxDepth + 1, MaxDepth + 1}, lim.Pos, lim.Msg) // the 65th key

	many := "[" + strings.Repeat("a,", MaxValues) + "]"
	_, lim = scan([]byte(many))
	require.NotNil(t, lim)
	require.Contains(t, lim.Msg, "too many YAML values")
}

func TestCheckText(t *testing.T) {
	for in, want := range map[string]string{
		"a: b\x00":         "1:5: control character U+0000",
		"a: b\r\nc: \x1b[": "2:4: control character U+001B",
		"a: \xff\xfe":      "1:4: invalid UTF-8 (byte 0xff)",
		"\xff\xfea\x00":    "1:1: invalid UTF-8",
		"a: \u0085\u0090":  "1:5: control character U+0090",
		"a:\rb: \x7f":      "2:4: control character U+007F",
	} {
		e := checkText([]byte(in))
		require.NotNil(t, e, "%q", in)
		require.Contains(t, e.Error(), "<input>:"+want)
	}
	require.Nil(t, checkText([]byte("\ufeffa: \"\\e\"\t# tab\r\nb: \u202e ok\n")))
}

func TestEscapeControls(t *testing.T) {
	require.Equal(t, `a\x1b[31mb\u202e\xff\t…`, escapeControls("a\x1b[31mb\u202e\xff\t…"))
	require.Equal(t, "plain µs…", escapeControls("plain µs…"))
	e := &Error{File: "f\x1b.yaml", Pos: Pos{1, 2}, Msg: "bad \x00"}
	require.Equal(t, `f\x1b.yaml:1:2: bad \x00`, e.Error())
}

func TestCostlyQuantity(t *testing.T) {
	for _, s := range []string{"1e-1000000000", "1e100", "5E+999", strings.Repeat("1", 65)} {
		_, err := ParseQuantity(s)
		require.Error(t, err, s)
	}
	for _, s := range []string{"32Gi", "1e9", "500M", "1Ei", "2.5e-3", "1E"} {
		require.False(t, costlyQuantity(s), s)
	}
}
