package main

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/chaosloop/chaosloop/scenarios"
)

// hostileCase is a scenario file chaosloop must refuse cleanly: exit 2, a
// file:line:column message containing want (at line:column when at is
// set), no crash, within the memory and time limits of runLimited.
type hostileCase struct {
	name string
	gen  func() string
	want string
	at   string
	// exits lists the accepted statuses when not only 2 (see partitions).
	exits []int
}

// base is a small valid scenario the cases break.
const base = `name: hostile
sites:
  - name: dc1
    racks:
      - name: r1
        power: [pdu-a]
        switches: [tor-1]
        nodes:
          - {name: n1, pools: [CORE]}
          - {name: n2, pools: [CORE]}
          - {name: n3, pools: [CORE]}
services:
  - {name: svc, kind: etcd, pool: CORE}
`

func fixed(s string) func() string { return func() string { return s } }

// repeat joins n copies of s.
func repeat(s string, n int) string { return strings.Repeat(s, n) }

// list writes "key: [item(0), item(1), ...]" on one line.
func list(key string, n int, item func(i int) string) string {
	var b strings.Builder
	b.WriteString(key + ": [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(item(i))
	}
	b.WriteString("]\n")
	return b.String()
}

// aliasBomb fans every level out k times through aliases: sites × racks ×
// nodes × pools, k⁴ values from a file of a few KB.
func aliasBomb(k int) string {
	refs := func(a string) string { return strings.TrimSuffix(repeat("*"+a+", ", k), ", ") }
	return fmt.Sprintf(`name: bomb
description: &n {name: n, pools: &p [%s]}
sites:
  - &s {name: s, racks: [&r {name: r, power: [p], switches: [s], nodes: [%s]}, %s]}
`, strings.TrimSuffix(repeat("A, ", k), ", "), refs("n"), refs("r")) + repeat("  - *s\n", k-1)
}

// nestedMaps nests n block mappings by indentation.
func nestedMaps(n int) string {
	var b strings.Builder
	b.WriteString("name: x\nsites:\n")
	for i := range n {
		b.WriteString(repeat(" ", i+2) + "a:\n")
	}
	return b.String()
}

// garbage is deterministic random bytes.
func garbage(n int) string {
	r := rand.New(rand.NewPCG(9, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

func hostileCases() []hostileCase {
	invalidLabel := "is not a DNS-1123 label"
	return []hostileCase{
		// Nesting: checked on the bytes, before any parser.
		{name: "deep-flow-40000", gen: fixed("name: x\nsites: " + repeat("[", 40000) + "\n"), want: "nested deeper than 64 levels", at: "2:39"},
		{name: "deep-flow-closed-20000", gen: fixed("name: x\nsites: " + repeat("[", 20000) + repeat("]", 20000) + "\n"), want: "nested deeper than 64"},
		{name: "deep-flow-maps", gen: fixed("name: x\nsites: " + repeat("{a: ", 20000) + "\n"), want: "nested deeper than 64"},
		{name: "deep-block-seq", gen: fixed("name: x\nsites:\n" + repeat("- ", 200000) + "x\n"), want: "nested deeper than 64", at: "3:127"},
		{name: "deep-block-maps", gen: func() string { return nestedMaps(2000) }, want: "nested deeper than 64", at: "66:66"},
		{name: "deep-unclosed-syntax", gen: fixed("name: x\nsites: [\n" + repeat("- [\n", 30) + "}\n"), want: "invalid YAML"},
		// Aliases: every value decoded through one counts.
		{name: "alias-bomb-30", gen: func() string { return aliasBomb(30) }, want: "aliases expand to more than 100000 values"},
		{name: "alias-bomb-95", gen: func() string { return aliasBomb(95) }, want: "aliases expand to more than 100000 values"},
		{name: "billion-laughs", gen: fixed(`name: lol
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
sites: *g
`), want: `unknown field "a"`},
		{name: "alias-self", gen: fixed("name: x\nsites: &a [{name: s, racks: *a}]\n"), want: "racks[0]: unknown field \"racks\""},
		{name: "alias-undefined", gen: fixed(base + "description: *nowhere\n"), want: `alias "*nowhere" refers to no anchor`, at: "14:14"},
		{name: "merge-key", gen: fixed(base + "x: &x {name: y}\nload:\n  <<: *x\n"), want: "merge keys are not supported"},
		// Size and counts.
		{name: "file-5mib", gen: fixed(base + "description: " + repeat("x", 5<<20) + "\n"), want: "longer than 4 MiB"},
		{name: "values-600k", gen: fixed("name: x\nsites: [" + repeat("a,", 600000) + "]\n"), want: "too many YAML values"},
		// The most a file may hold: every value parsed, then refused.
		{name: "values-just-under-limit", gen: func() string {
			var b strings.Builder
			b.WriteString("name: x\ndescription:\n")
			for i := range scenarios.MaxValues/2 - 100 {
				fmt.Fprintf(&b, "  k%d:\n", i)
			}
			return b.String()
		}, want: "description: expected a string, got a mapping"},
		{name: "sites-200", gen: func() string {
			return "name: x\n" + list("sites", 200, func(i int) string { return fmt.Sprintf("{name: s%d}", i) })
		}, want: "too many sites: a scenario holds at most 100", at: "2:1299"},
		{name: "nodes-60000", gen: func() string {
			return "name: x\nsites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [" +
				strings.TrimSuffix(repeat("{name: n}, ", 60000), ", ") + "]}]}]\n"
		}, want: "too many nodes: a scenario holds at most 50000"},
		{name: "services-10000", gen: func() string {
			return base[:strings.Index(base, "services:")] + list("services", 10000, func(i int) string {
				return fmt.Sprintf("{name: s%d, kind: etcd, pool: CORE}", i)
			})
		}, want: "too many services: a scenario holds at most 1000"},
		{name: "faults-5000", gen: func() string {
			return base + list("faults", 5000, func(int) string { return "{at: 1s, action: kill, target: service/svc}" })
		}, want: "too many faults"},
		{name: "duplicate-keys-10000", gen: fixed(base + repeat("name: again\n", 10000)), want: "and 9950 more problems"},
		{name: "bad-names-50000", gen: func() string {
			return "name: x\nsites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [" +
				strings.TrimSuffix(repeat("{name: N}, ", 50000), ", ") + "]}]}]\n"
		}, want: "more problems"},
		// Scalars and numbers.
		{name: "huge-description-and-bad-name", gen: fixed(strings.Replace(base, "name: hostile", "name: Hostile", 1) + "description: " + repeat("x", 4<<20-400) + "\n"), want: invalidLabel, at: "1:7"},
		{name: "name-100000-chars", gen: fixed(strings.Replace(base, "n1,", repeat("n", 100000)+",", 1)), want: "is too long: 100000 characters, at most 63"},
		{name: "key-1000-chars", gen: fixed(base + repeat("k", 1000) + ": 1\n"), want: "unknown field \"kkk"},
		{name: "key-1mib", gen: fixed(base + repeat("k", 1<<20) + ": 1\n"), want: "could not find expected ':'", at: "14:1"},
		{name: "integer-100000-digits", gen: fixed(base[:len(base)-2] + ", replicas: " + repeat("9", 100000) + "}\n"), want: "replicas: expected an integer"},
		{name: "replicas-maxint", gen: fixed(base[:len(base)-2] + ", replicas: 9223372036854775807}\n"), want: "replicas must be at most 1000"},
		{name: "replicas-minint", gen: fixed(base[:len(base)-2] + ", replicas: -9223372036854775808}\n"), want: "replicas must be at least 1"},
		{name: "partitions-float-1e18", gen: fixed(base + "  - {name: k, kind: kafka, pool: CORE, replicas: 1, partitions: 1e18}\n"), want: "partitions must be at most 10000"},
		{name: "partitions-1e18", gen: fixed(base + "  - {name: k, kind: kafka, pool: CORE, replicas: 1, partitions: 1000000000000000000}\n"), want: "partitions must be at most 10000"},
		{name: "partitions-2e8", gen: fixed(base + "  - {name: k, kind: kafka, pool: CORE, replicas: 1, partitions: 200000000}\n"), want: "partitions must be at most 10000"},
		{name: "nan-inf", gen: fixed(base + "load: {rate: .nan}\nexpect: {throughput: -.inf}\n"), want: `load.rate: invalid number ".nan"`},
		{name: "float-overflow", gen: fixed(strings.Replace(base, "pools: [CORE]}", "pools: [CORE], cpu: 1e999}", 1)), want: `cpu: expected a number, got "1e999"`},
		{name: "duration-overflow", gen: fixed(base + "load: {duration: 99999999999h}\n"), want: "invalid duration"},
		{name: "quantity-exponent", gen: fixed(strings.Replace(base, "pools: [CORE]}", "pools: [CORE], memory: 1e-1000000000}", 1)), want: "expected a size such as 32Gi or a whole number of bytes"},
		// Bytes no scenario holds.
		{name: "binary-garbage", gen: func() string { return garbage(64 << 10) }, want: "invalid UTF-8", at: "1:2"},
		{name: "nul", gen: fixed(base + "description: a\x00b\n"), want: "control character U+0000", at: "14:15"},
		{name: "esc-raw", gen: fixed(base + "description: \x1b[2J\n"), want: "control character U+001B"},
		{name: "esc-in-name", gen: fixed(strings.Replace(base, "name: n2", `name: "n2\e[2J\e]0;pwned\a"`, 1)), want: `"n2\x1b[2J\x1b]0;pwned\a" ` + invalidLabel},
		{name: "esc-in-key", gen: fixed(base + "\"\\e[31mred\": 1\n"), want: `unknown field "\x1b[31mred"`},
		{name: "bidi-in-name", gen: fixed(strings.Replace(base, "name: n2", "name: n2\u202e", 1)), want: `"n2\u202e" ` + invalidLabel},
		{name: "utf16-bom", gen: fixed("\xff\xfen\x00a\x00m\x00e\x00"), want: "invalid UTF-8 (byte 0xff)", at: "1:1"},
		{name: "utf8-bom", gen: fixed("\ufeff" + strings.Replace(base, "pdu-a", "PDU-A", 1)), want: invalidLabel, at: "6:17"},
		{name: "crlf", gen: fixed(strings.ReplaceAll(strings.Replace(base, "tor-1", "tor_1", 1), "\n", "\r\n")), want: invalidLabel, at: "7:20"},
		{name: "tab-indent", gen: fixed(strings.Replace(base, "    racks:", "\tracks:", 1)), want: "a tab indents this line", at: "4:1"},
		// Syntax errors, located.
		{name: "unclosed-bracket", gen: fixed("name: x\nsites:\n  - name: a\n    racks:\n      - name: r\n        power: [p, q\n        switches: [s]\n"), want: "this '[' is never closed", at: "6:16"},
		{name: "unclosed-quote", gen: fixed(base + "description: \"abc\n"), want: "never closed", at: "14:14"},
		{name: "bad-escape", gen: fixed(base + "description: \"a\\x\"\n"), want: `invalid escape: \x takes 2 hexadecimal digits`, at: "14:16"},
		{name: "multi-document", gen: fixed(base + "---\n" + base), want: "exactly one YAML document", at: "14:1"},
		{name: "empty", gen: fixed(""), want: "empty scenario file", at: "1:1"},
		{name: "comments-only", gen: fixed("# nothing\n---\n"), want: "empty scenario file", at: "1:1"},
		{name: "not-a-mapping", gen: fixed("- a\n- b\n"), want: "scenario: expected a mapping"},
		{name: "kubernetes-manifest", gen: fixed("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"), want: `unknown field "apiVersion"`},
	}
}
