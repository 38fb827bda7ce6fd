package bmc

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goyaml "github.com/goccy/go-yaml"
	goparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/scenarios"
)

// maxErrors is how many problems are listed; the rest are counted in a
// last line, as scenario files do.
const maxErrors = 50

// problems collects an inventory's problems, all reported at once.
type problems struct {
	file string
	list scenarios.Errors
}

func (p *problems) add(at scenarios.Pos, format string, args ...any) {
	p.list = append(p.list, &scenarios.Error{File: p.file, Pos: at, Msg: fmt.Sprintf(format, args...)})
}

// err is the problems in file order, nil for none.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	es := slices.Clone(p.list)
	slices.SortStableFunc(es, func(a, b *scenarios.Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if more := len(es) - maxErrors; more > 0 {
		at := es[maxErrors]
		es = append(es[:maxErrors:maxErrors], &scenarios.Error{File: p.file, Pos: at.Pos, Msg: fmt.Sprintf("and %d more problems, not listed", more), More: more})
	}
	return es
}

func posOf(n *yaml.Node) scenarios.Pos { return scenarios.Pos{Line: n.Line, Column: n.Column} }

// yamlLine is the line yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode parses an inventory strictly: unknown and duplicate fields,
// mistyped values and literal passwords are problems, all collected. A nil
// inventory means the file could not be parsed at all.
func decode(file string, data []byte) (*Inventory, *problems) {
	errs := &problems{file: file}
	if len(data) > MaxFileBytes {
		errs.add(scenarios.Pos{Line: 1, Column: 1}, "the file is longer than %d MiB, the most a BMC inventory may be", MaxFileBytes>>20)
		return nil, errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			errs.add(scenarios.Pos{Line: 1, Column: 1}, "empty BMC inventory: it needs a bmcs list")
		} else {
			at, msg := syntaxError(data, err)
			errs.add(at, "invalid YAML: %s", msg)
		}
		return nil, errs
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		errs.add(posOf(&next), "a BMC inventory is one YAML document; remove the second")
		return nil, errs
	}
	inv := &Inventory{File: file}
	d := &decoder{errs: errs, file: file, dir: filepath.Dir(file)}
	d.inventory(root.Content[0], inv)
	return inv, errs
}

// syntaxError locates a YAML syntax error. yaml.v3 gives only a line, for
// some errors the line where the enclosing block began, so goccy/go-yaml's
// parser, which gives the offending token's line and column, is asked
// first, on input small and shallow enough for its recursion (as
// scenarios does): a real inventory always is.
func syntaxError(data []byte, err error) (scenarios.Pos, string) {
	at, msg := scenarios.Pos{Line: 1, Column: 1}, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		at.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	var se *goyaml.SyntaxError
	if len(data) <= goccyMaxBytes && bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{"))+bytes.Count(data, []byte("- ")) <= goccyMaxNesting {
		if _, perr := goparser.ParseBytes(data, 0); errors.As(perr, &se) && se.Token != nil {
			return scenarios.Pos{Line: se.Token.Position.Line, Column: se.Token.Position.Column}, se.Message
		}
	}
	return at, msg
}

// goccy/go-yaml recurses once a level: these bound what it is given.
const (
	goccyMaxBytes   = 64 << 10
	goccyMaxNesting = 2_000
)

type decoder struct {
	errs      *problems
	file, dir string
}

// mapping walks a mapping's keys, reporting duplicates and non-string
// keys, and calls field for the rest in order.
func (d *decoder) mapping(n *yaml.Node, what string, field func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		d.errs.add(posOf(n), "%s must be a mapping, not %s", what, kindName(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			d.errs.add(posOf(k), "%s: keys must be plain field names", what)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errs.add(posOf(k), "%s: field %q is given twice (first on line %d)", what, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		field(k.Value, k, v)
	}
	return true
}

func (d *decoder) inventory(n *yaml.Node, inv *Inventory) {
	d.mapping(n, "the inventory", func(key string, k, v *yaml.Node) {
		if key != "bmcs" {
			d.errs.add(posOf(k), "unknown field %q: the inventory has one field, bmcs", key)
			return
		}
		if v.Kind != yaml.SequenceNode {
			d.errs.add(posOf(v), "bmcs must be a list of BMCs, not %s", kindName(v))
			return
		}
		for i, item := range v.Content {
			inv.BMCs = append(inv.BMCs, d.bmc(item, fmt.Sprintf("bmcs[%d]", i)))
		}
	})
}

// stringFields are a BMC's string fields, by their YAML names.
var stringFields = map[string]func(*BMC) *string{
	"node":         func(b *BMC) *string { return &b.Node },
	"protocol":     func(b *BMC) *string { return (*string)(&b.Protocol) },
	"address":      func(b *BMC) *string { return &b.Address },
	"system":       func(b *BMC) *string { return &b.System },
	"username":     func(b *BMC) *string { return &b.Username },
	"passwordEnv":  func(b *BMC) *string { return &b.PasswordEnv },
	"passwordFile": func(b *BMC) *string { return &b.PasswordFile },
	"interface":    func(b *BMC) *string { return &b.Interface },
}

// literalPassword holds the keys a password itself might be put under.
var literalPassword = map[string]bool{"password": true, "pass": true, "passwd": true, "secret": true}

func (d *decoder) bmc(n *yaml.Node, path string) BMC {
	b := BMC{file: d.file, dir: d.dir, pos: map[string]scenarios.Pos{"": posOf(n)}, failed: map[string]bool{}}
	if !d.mapping(n, path, func(key string, k, v *yaml.Node) {
		b.pos[key] = posOf(v)
		switch {
		case v.Kind == yaml.AliasNode:
			// Aliases would let a small file expand without bound.
			d.errs.add(posOf(v), "%s.%s: YAML aliases are not supported in a BMC inventory", path, key)
			b.failed[key] = true
		case stringFields[key] != nil:
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				d.errs.add(posOf(v), "%s.%s must be a string, not %s (quote it)", path, key, kindName(v))
				b.failed[key] = true
				return
			}
			*stringFields[key](&b) = v.Value
		case key == "insecureSkipVerify":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				d.errs.add(posOf(v), "%s.%s must be true or false, not %s", path, key, kindName(v))
				b.failed[key] = true
				return
			}
			b.InsecureSkipVerify = v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
		case literalPassword[key]:
			d.errs.add(posOf(k), "%s.%s: a password may not be written in the inventory (it would end up in version control, backups and bug reports); put it in an environment variable and name it with passwordEnv, or in a file readable only by chaosloop's user and name it with passwordFile", path, key)
		default:
			d.errs.add(posOf(k), "%s: unknown field %q (fields: node, protocol, address, system, username, passwordEnv, passwordFile, insecureSkipVerify, interface)", path, key)
		}
	}) {
		b.failed[""] = true
	}
	return b
}

func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.Tag == "!!null":
		return "empty"
	case n.Tag == "!!int", n.Tag == "!!float":
		return "a number"
	case n.Tag == "!!bool":
		return "a boolean"
	case n.Tag == "!!str":
		return "a string"
	}
	return n.Tag
}
