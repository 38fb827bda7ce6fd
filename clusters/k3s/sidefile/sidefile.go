// Package sidefile is what the k3s backend's own YAML files (the BMC
// inventory, the node map) share: strict decoding whose every problem is
// collected and named by file:line:column, as scenario files' are.
package sidefile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	goyaml "github.com/goccy/go-yaml"
	goparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/scenarios"
)

// MaxErrors is how many problems are listed; the rest are counted in a
// last line, as scenario files do.
const MaxErrors = 50

// Problems collects a file's problems, all reported at once.
type Problems struct {
	File string
	List scenarios.Errors
}

// Add records a problem at a position.
func (p *Problems) Add(at scenarios.Pos, format string, args ...any) {
	p.List = append(p.List, &scenarios.Error{File: p.File, Pos: at, Msg: fmt.Sprintf(format, args...)})
}

// Err is the problems in file order (a scenarios.Errors), nil for none.
func (p *Problems) Err() error {
	if len(p.List) == 0 {
		return nil
	}
	es := slices.Clone(p.List)
	slices.SortStableFunc(es, func(a, b *scenarios.Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if more := len(es) - MaxErrors; more > 0 {
		at := es[MaxErrors]
		es = append(es[:MaxErrors:MaxErrors], &scenarios.Error{File: p.File, Pos: at.Pos, Msg: fmt.Sprintf("and %d more problems, not listed", more), More: more})
	}
	return es
}

// Pos is where a YAML node starts.
func Pos(n *yaml.Node) scenarios.Pos { return scenarios.Pos{Line: n.Line, Column: n.Column} }

// yamlLine is the line yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// SyntaxError locates a YAML syntax error. yaml.v3 gives only a line, for
// some errors the line where the enclosing block began, so goccy/go-yaml's
// parser, which gives the offending token's line and column, is asked
// first, on input small and shallow enough for its recursion (as
// scenarios does): a real side file always is.
func SyntaxError(data []byte, err error) (scenarios.Pos, string) {
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

// KindName names what a node is, for "must be a string, not …".
func KindName(n *yaml.Node) string {
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

// Document decodes data, which must be one YAML document, into its root
// node; nil when it cannot be, with the problem recorded. what names the
// file's kind ("node map"), needs what an empty one lacks ("a bmcs list").
func Document(p *Problems, data []byte, what, needs string) *yaml.Node {
	start := scenarios.Pos{Line: 1, Column: 1}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.Add(start, "empty %s: it needs %s", what, needs)
		} else {
			at, msg := SyntaxError(data, err)
			p.Add(at, "invalid YAML: %s", msg)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		p.Add(Pos(&next), "a %s is one YAML document; remove the second", what)
		return nil
	}
	return doc.Content[0]
}
