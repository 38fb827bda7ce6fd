package scenarios

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goyaml "github.com/goccy/go-yaml"
	goparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"
)

// ReadFile reads and decodes a scenario file. It does not apply defaults or
// validate; see Parse for the usual pipeline.
func ReadFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data)
}

// Parse reads a scenario file, applies defaults and validates it: the usual
// pipeline for commands. A returned error is an Errors list unless the file
// could not be read.
func Parse(path string) (*Scenario, error) {
	return complete(ReadFile(path))
}

// complete applies defaults to a decoded scenario and validates it,
// reporting decoding and validation problems together.
func complete(s *Scenario, err error) (*Scenario, error) {
	var decodeErrs Errors
	if !errors.As(err, &decodeErrs) || s == nil {
		if err != nil {
			return nil, err
		}
	}
	d := s.WithDefaults()
	verr := d.Validate()
	if decodeErrs == nil {
		if verr != nil {
			return nil, verr
		}
		return d, nil
	}
	// Report decoding and validation problems together, leaving out what
	// validation says of fields that failed to decode (they would repeat
	// the decoding error as "missing" or "invalid").
	all := slices.Clone(decodeErrs)
	var verrs Errors
	errors.As(verr, &verrs)
	for _, e := range verrs {
		if !slices.ContainsFunc(decodeErrs, func(de *Error) bool { return de.Path != "" && underPath(e.Path, de.Path) }) {
			all = append(all, e)
		}
	}
	return nil, all.orNil()
}

// underPath reports whether path is p or lies inside it.
func underPath(path, p string) bool {
	return path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[")
}

// Decode decodes a scenario strictly: unknown fields, duplicate keys and
// mistyped values are errors, all reported at once. file names the input in
// error messages. With errors, the partly decoded scenario is returned too
// (nil only when the YAML itself could not be parsed).
func Decode(file string, data []byte) (*Scenario, error) {
	d := &decoder{file: file, pos: map[string]Pos{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{d.syntaxError(data, err)}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, Errors{{File: file, Pos: Pos{1, 1}, Msg: "empty scenario file"}}
	}
	if multiDocument(data) {
		return nil, Errors{{File: file, Pos: Pos{1, 1}, Msg: "a scenario file holds exactly one YAML document"}}
	}
	s := &Scenario{File: file}
	d.decode(root.Content[0], reflect.ValueOf(s).Elem(), "")
	s.pos = d.pos
	// The partly decoded scenario comes back with its errors, so that Parse
	// can report validation problems of the rest at the same time.
	return s, d.errs.orNil()
}

// multiDocument reports whether data holds more than one YAML document.
func multiDocument(data []byte) bool {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	n := 0
	for {
		var v yaml.Node
		if err := dec.Decode(&v); err != nil {
			return n > 1
		}
		n++
	}
}

type decoder struct {
	file string
	pos  map[string]Pos
	errs Errors
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError locates a YAML syntax error. yaml.v3 reports only a line (and
// often the line where the enclosing block began), so goccy/go-yaml's parser,
// which reports the offending token's line and column, is asked first.
func (d *decoder) syntaxError(data []byte, err error) *Error {
	var se *goyaml.SyntaxError
	if _, perr := goparser.ParseBytes(data, 0); errors.As(perr, &se) && se.Token != nil {
		return &Error{File: d.file, Pos: Pos{se.Token.Position.Line, se.Token.Position.Column}, Msg: "invalid YAML: " + se.Message}
	}
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: d.file, Pos: Pos{line, 1}, Msg: "invalid YAML: " + msg}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Pos: Pos{n.Line, n.Column}, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// decode fills v from n, recording the position of every field it meets.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos[path] = Pos{n.Line, n.Column}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if v.Kind() == reflect.Pointer {
		if null {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
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
		if null {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "%s: expected a list, got %s", d.label(path), kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
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

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "%s: expected a mapping, got %s", d.label(path), kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
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

// label names a path for messages: "scenario" for the root.
func (d *decoder) label(path string) string {
	if path == "" {
		return "scenario"
	}
	return path
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

// suggest offers the closest known field for a misspelt key.
func suggest(key string, fields map[string]int) string {
	best, bestD := "", 3
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known fields: %s)", strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
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
