package scenarios_test

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

var update = flag.Bool("update", false, "rewrite the generated field table of docs/scenario.md")

const (
	refDoc   = "../docs/scenario.md"
	refBegin = "<!-- BEGIN generated field table: go test ./scenarios -run TestFieldReference -update -->\n"
	refEnd   = "<!-- END generated field table -->"
)

// TestFieldReference: the field tables of docs/scenario.md are generated
// from the rules that Validate checks and the schema states; this fails when
// they are stale (rerun with -update).
func TestFieldReference(t *testing.T) {
	b, err := os.ReadFile(refDoc)
	require.NoError(t, err)
	doc := string(b)
	head, rest, ok := strings.Cut(doc, refBegin)
	require.True(t, ok, "no BEGIN marker in %s", refDoc)
	_, tail, ok := strings.Cut(rest, refEnd)
	require.True(t, ok, "no END marker in %s", refDoc)
	want := head + refBegin + "\n" + scenarios.FieldReference() + "\n" + refEnd + tail
	if *update {
		require.NoError(t, os.WriteFile(refDoc, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, doc, "docs/scenario.md is stale: go test ./scenarios -run TestFieldReference -update")
}

// TestRulesCoverFields: every field of the format has exactly one rule and
// every rule names a field, so nothing is left unchecked or undocumented.
func TestRulesCoverFields(t *testing.T) {
	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			paths = append(paths, p)
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), p+"[]")
			case ft == reflect.TypeFor[*scenarios.Load](), ft == reflect.TypeFor[*scenarios.Expect](), ft == reflect.TypeFor[*scenarios.Attach]():
				walk(ft.Elem(), p)
			}
		}
	}
	walk(reflect.TypeFor[scenarios.Scenario](), "")
	var rules []string
	for _, r := range scenarios.Rules() {
		rules = append(rules, r.Path)
		require.NotEmpty(t, r.Doc, "%s has no description", r.Path)
	}
	require.Equal(t, paths, rules)
}

// TestPatterns: the syntax patterns accept what the parsers accept, and
// ParseTarget agrees with the schema's target pattern.
func TestPatterns(t *testing.T) {
	for _, s := range []string{"0", "90s", "1m30s", ".5s", "5.s", "1h1h", "2µs", "2μs", "2us", "1.5h", "0.000000001s"} {
		_, err := scenarios.ParseDuration(s)
		require.NoError(t, err, s)
	}
	for _, s := range []string{"", "5", "+5s", "-0s", "1d", "s", ".s", "1 s", "99999999999h", "0x10s"} {
		_, err := scenarios.ParseDuration(s)
		require.Error(t, err, s)
	}
	for _, s := range []string{"0", "32Gi", "500G", "1.5Ti", ".5Gi", "5.Gi", "34359738368", "1k", "1Ki"} {
		_, err := scenarios.ParseQuantity(s)
		require.NoError(t, err, s)
	}
	for _, s := range []string{"", "500m", "1.5", "1e3", "1E3", "-1", "1K", "1 Gi", "1Gib", "+1"} {
		_, err := scenarios.ParseQuantity(s)
		require.Error(t, err, s)
	}
	re := regexpOf(t, scenarios.TargetPattern())
	for _, s := range []string{"site/a", "rack/a/b", "node/n-1", "feed/p", "switch/w", "link/a/b", "service/s", "service/s/leader", "service/s/0", "service/s/999",
		"rack/x", "service/db/01", "service/db/-1", "galaxy/x", "node//x", "node/a/b", "node/A", "service/s/1000", "site/a/"} {
		_, err := scenarios.ParseTarget(s)
		// The pattern is ParseTarget's syntax with names as labels and
		// member indexes below MaxReplicas; link/a/a it cannot refuse.
		require.Equal(t, err == nil && !strings.ContainsAny(s, "A") && s != "service/s/1000", re.MatchString(s), s)
	}
	require.True(t, re.MatchString("link/a/a"), "a documented gap: a link to itself is refused by ParseTarget only")
}

func regexpOf(t *testing.T, pattern string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(pattern)
	require.NoError(t, err)
	return re
}
