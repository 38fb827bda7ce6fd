package scenarios

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	goyaml "github.com/goccy/go-yaml"
	goparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"
)

// underPath reports whether path is p or lies inside it.
func underPath(path, p string) bool {
	return path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")
}

// Decode decodes a scenario strictly: unknown fields, duplicate keys and
// mistyped values are errors, all reported at once. file names the input in
// error messages. With errors, the partly decoded scenario is returned too
// (nil only when the YAML itself could not be parsed or a limit was
// crossed).
func Decode(file string, data []byte) (*Scenario, error) {
	s, errs := decode(file, data)
	return s, errs.err()
}

func decode(file string, data []byte) (*Scenario, *problems) {
	errs := &problems{}
	fail := func(e *Error) (*Scenario, *problems) {
		e.File = file
		errs.add(e)
		return nil, errs
	}
	if len(data) > MaxFileBytes {
		return fail(&Error{Pos: posAt(data, MaxFileBytes), Msg: fmt.Sprintf("the file is longer than %d MiB, the most a scenario file may be", MaxFileBytes>>20)})
	}
	if e := checkText(data); e != nil {
		return fail(e)
	}
	sc, e := scan(data)
	if e != nil {
		return fail(e)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return fail(&Error{Pos: Pos{1, 1}, Msg: "empty scenario file"})
	case err != nil:
		return fail(syntaxError(data, err, sc))
	case emptyDocument(&root):
		return fail(&Error{Pos: Pos{1, 1}, Msg: "empty scenario file"})
	}
	if e := extraDocument(dec, data, sc); e != nil {
		return fail(e)
	}
	d := &decoder{file: file, pos: map[string]Pos{}, failed: map[string]bool{}, errs: errs}
	s := &Scenario{File: file}
	d.decode(root.Content[0], reflect.ValueOf(s).Elem(), "")
	if d.stop {
		return nil, errs
	}
	s.pos, s.failed = d.pos, d.failed
	// The partly decoded scenario comes back with its errors, so that Parse
	// can report validation problems of the rest at the same time.
	return s, errs
}

// extraDocument reports a document after the scenario's, or what made it
// unparseable. Empty ones (a trailing "---") are fine.
func extraDocument(dec *yaml.Decoder, data []byte, sc *scanner) *Error {
	for empty := 0; ; empty++ {
		var next yaml.Node
		err := dec.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err == nil && emptyDocument(&next):
			continue
		case empty < len(sc.docStarts):
			return &Error{Pos: sc.docStarts[empty], Msg: "a scenario file holds exactly one YAML document; a second one starts here"}
		case err != nil:
			return syntaxError(data, err, sc)
		}
		return &Error{Pos: Pos{max(next.Line, 1), max(next.Column, 1)}, Msg: "a scenario file holds exactly one YAML document; a second one starts here"}
	}
}

// emptyDocument reports whether a document holds nothing (a trailing
// "---" or a comment after the scenario).
func emptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	n := doc.Content[0]
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == ""
}

// posAt returns the line and column of a byte offset.
func posAt(data []byte, off int) Pos {
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	return Pos{line, utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1}
}

type decoder struct {
	file string
	pos  map[string]Pos
	// failed holds the paths whose values could not be decoded: they are
	// left unset, and validation says nothing more of them.
	failed map[string]bool
	errs   *problems
	// counts holds how many elements of each limited type were decoded.
	counts map[reflect.Type]int
	// alias is the outermost alias being expanded; aliased counts the
	// values decoded through aliases.
	alias   *yaml.Node
	aliased int
	// stop is set when a limit is crossed: decoding ends there.
	stop bool
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are yaml.v3's parser (not scanner) errors: it reports their
// line 0-based, and it is the line where the enclosing list or mapping
// began, not where the problem is.
var parserProblems = map[string]bool{
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
	"found undefined tag handle":             true,
}

// syntaxError locates a YAML syntax error. yaml.v3 reports only a line (for
// parser errors the line where the enclosing block began), so what the
// scanner noted is preferred: the problem yaml.v3's message names (an
// unclosed '[' is reported where it opens), else the first problem when it
// comes no later. Then goccy/go-yaml's parser, which reports the offending
// token's line and column (only on input small and shallow enough for it,
// see goccySafe), then yaml.v3's line. Parsers' messages may quote input:
// they are clipped (and escaped when printed, see Error).
func syntaxError(data []byte, err error, sc *scanner) *Error {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			line++
		}
	}
	if p := sc.problemFor(msg); p != nil {
		return &Error{Pos: p.at, Msg: "invalid YAML: " + p.msg}
	}
	if p := sc.problem; p != nil && (line == 0 || p.at.Line <= line) {
		return &Error{Pos: p.at, Msg: "invalid YAML: " + p.msg}
	}
	line = max(line, 1)
	var se *goyaml.SyntaxError
	if goccySafe(data) {
		if _, perr := goparser.ParseBytes(data, 0); errors.As(perr, &se) && se.Token != nil {
			if at := se.Token.Position; at.Line == line || (parserProblems[msg] && at.Line > line) {
				return &Error{Pos: Pos{at.Line, at.Column}, Msg: "invalid YAML: " + clipTo(se.Message, 4*clipRunes)}
			}
		}
	}
	return &Error{Pos: Pos{line, firstColumn(data, line)}, Msg: "invalid YAML: " + clipTo(msg, 4*clipRunes)}
}

// firstColumn returns the column of the first non-blank character of a
// line (1 past its end when it is blank or missing).
func firstColumn(data []byte, line int) int {
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return 1
		}
		data = data[i+1:]
	}
	col := 1
	for col <= len(data) && isBlank(data[col-1]) {
		col++
	}
	return col
}

// errorf records a problem with the value at path; the value is then left
// unset and validation says nothing more of it.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if path != "" {
		d.failed[path] = true
	}
	d.errs.add(&Error{File: d.file, Pos: Pos{n.Line, n.Column}, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// abort ends decoding at a crossed limit. The limit is the one problem
// reported: what was found before it would hide it past MaxErrors, and the
// file is refused whole anyway.
func (d *decoder) abort(n *yaml.Node, format string, args ...any) {
	*d.errs = problems{}
	d.errorf(n, "", format, args...)
	d.stop = true
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// countLimits bounds how many elements of these types a scenario holds.
var countLimits = map[reflect.Type]struct {
	what string
	max  int
}{
	reflect.TypeFor[Site]():    {"sites", MaxSites},
	reflect.TypeFor[Rack]():    {"racks", MaxRacks},
	reflect.TypeFor[Node]():    {"nodes", MaxNodes},
	reflect.TypeFor[Link]():    {"links", MaxLinks},
	reflect.TypeFor[Service](): {"services", MaxServices},
	reflect.TypeFor[Fault]():   {"faults", MaxFaults},
}

// enter counts a value decoded through an alias; it reports false once
// decoding has stopped.
func (d *decoder) enter(n *yaml.Node) bool {
	if d.alias != nil && !d.stop {
		if d.aliased++; d.aliased > MaxAliasValues {
			d.abort(d.alias, "aliases expand to more than %d values (the most a scenario file may expand to)", MaxAliasValues)
		}
	}
	return !d.stop
}

// decode fills v from n, recording the position of every field it meets.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		if d.alias == nil {
			d.alias = n
			defer func() { d.alias = nil }()
		}
		n = n.Alias
	}
	if !d.enter(n) {
		return
	}
	d.pos[path] = Pos{n.Line, n.Column}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if v.Kind() == reflect.Pointer {
		if null {
			return
		}
		// Set only once decoded: a value that failed stays unset, so that
		// defaults and validation treat it as absent.
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		if !d.failed[path] {
			v.Set(p)
		}
		return
	}
	if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
		nd.decodeYAML(d, n, path)
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode || null {
			d.errorf(n, path, "%s: expected a string, got %s", d.label(path), kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errorf(n, path, "%s: %v", d.label(path), err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path, null)
	case reflect.String:
		if null {
			return
		}
		// Strictly a string, as in JSON (and kubectl): name: 1 is a number.
		if !isString(n) {
			d.errorf(n, path, "%s: expected a string, got %s", d.label(path), kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := integer(n)
		if err != nil {
			d.errorf(n, path, "%s: %v", d.label(path), err)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := float(n)
		if err != nil {
			d.errorf(n, path, "%s: %v", d.label(path), err)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("scenarios: no decoder for %s", v.Type()))
	}
}

// decodeSlice decodes a list, refusing more elements of a limited type
// (sites, nodes...) than the scenario may hold before allocating them.
func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, null bool) {
	if null {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "%s: expected a list, got %s", d.label(path), kindName(n))
		return
	}
	if lim, ok := countLimits[v.Type().Elem()]; ok {
		if d.counts == nil {
			d.counts = map[reflect.Type]int{}
		}
		had := d.counts[v.Type().Elem()]
		if had+len(n.Content) > lim.max {
			d.abort(n.Content[lim.max-had], "too many %s: a scenario holds at most %d", lim.what, lim.max)
			return
		}
		d.counts[v.Type().Elem()] = had + len(n.Content)
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "%s: expected a mapping, got %s", d.label(path), kindName(n))
		d.failed[path] = true // the root too: nothing of it can be validated
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && !d.stop; i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "%s: keys must be strings", d.label(path))
			continue
		}
		if k.Value == "<<" {
			d.errorf(k, path, "%s: YAML merge keys are not supported", d.label(path))
			continue
		}
		fp := joinPath(path, k.Value)
		if seen[k.Value] {
			// No path: the first value decoded fine and is validated as usual.
			d.errorf(k, "", "%s: duplicate key %q", d.label(path), clip(k.Value))
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(k, fp, "%s: unknown field %q%s", d.label(path), clip(k.Value), suggest(k.Value, fields))
			continue
		}
		d.decode(val, v.Field(idx), fp)
	}
}

// label names a path for messages: "scenario" for the root. A path holds
// user input only as a map key of expect.failover, clipped here.
func (d *decoder) label(path string) string {
	if path == "" {
		return "scenario"
	}
	return clipTo(path, 4*clipRunes)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldsOf maps YAML keys to field indexes, skipping unexported fields.
func fieldsOf(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		m[name] = i
	}
	return m
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int", "!!float":
			return "the number " + clip(n.Value)
		case "!!bool":
			return "the boolean " + clip(n.Value)
		}
		return fmt.Sprintf("%q", clip(n.Value))
	}
	return "an unsupported YAML node"
}

// At returns where path (or its nearest written ancestor) is in the file.
func (s *Scenario) At(path string) Pos {
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		if path == "" {
			return Pos{1, 1}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// Has reports whether path was written in the file.
func (s *Scenario) Has(path string) bool {
	_, ok := s.pos[path]
	return ok
}

// Errorf builds an Error located at path.
func (s *Scenario) Errorf(path, format string, args ...any) *Error {
	return &Error{File: s.File, Pos: s.At(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}
