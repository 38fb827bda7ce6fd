package scenarios

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Pos is a 1-based line and column in a scenario file.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

// Error is one problem in a scenario file.
type Error struct {
	File string `json:"file"`
	Pos
	// Path is the field path ("services[1].pool"), empty for syntax errors.
	Path string `json:"path,omitempty"`
	Msg  string `json:"message"`
	// More, on the last line of a capped list, counts the problems found
	// but not listed ("and 12 more problems, not listed").
	More int `json:"more,omitempty"`
}

// Error returns "FILE:LINE:COLUMN: MESSAGE", safe to print on a terminal:
// whatever of the input reached it (a file name, a parser's message) has
// its control and invisible formatting characters escaped.
func (e *Error) Error() string {
	file := e.File
	if file == "" {
		file = "<input>"
	}
	if e.Line == 0 {
		return escapeControls(fmt.Sprintf("%s: %s", file, e.Msg))
	}
	return escapeControls(fmt.Sprintf("%s:%d:%d: %s", file, e.Line, e.Column, e.Msg))
}

// escapeControls escapes, as strconv.Quote would, every character that is
// not printable (control characters such as ESC, bidirectional overrides,
// invalid UTF-8), so that no input can rewrite a terminal.
func escapeControls(s string) string {
	clean := func(r rune, size int) bool { return (r != utf8.RuneError || size > 1) && strconv.IsPrint(r) }
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !clean(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if clean(r, size) {
			b.WriteString(s[i : i+size])
		} else {
			q := strconv.Quote(s[i : i+size])
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// Errors is every problem found in a file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// plural is noun for n of them ("1 problem", "2 problems").
func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// Listed splits a list as Parse and Decode return it into the problems
// listed and the count of those found but not listed (its last line when
// the list was capped at MaxErrors).
func (es Errors) Listed() (Errors, int) {
	if n := len(es); n > 0 && es[n-1].More > 0 {
		return es[:n-1], es[n-1].More
	}
	return es, 0
}

// sorted orders problems by position, then message, so output is stable.
func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), strings.Compare(a.Msg, b.Msg))
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

// orNil returns nil for an empty list, so callers can test err != nil.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es.sorted()
}

// problems collects a file's problems, keeping the first maxStoredErrors
// (an alias bomb or a list of 10,000 bad names must not fill memory) and
// counting the rest.
type problems struct {
	list    Errors
	dropped int
}

func (p *problems) add(e *Error) {
	if len(p.list) < maxStoredErrors {
		p.list = append(p.list, e)
	} else {
		p.dropped++
	}
}

func (p *problems) merge(q *problems) {
	for _, e := range q.list {
		p.add(e)
	}
	p.dropped += q.dropped
}

// err returns the problems in file order as an Errors list, nil for none:
// at most MaxErrors, then one more line at the first left out, counting
// them ("and 12 more problems, not listed").
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	es := p.list.sorted()
	if more := len(es) - MaxErrors + p.dropped; more > 0 {
		at := es[len(es)-1]
		if len(es) > MaxErrors {
			at = es[MaxErrors]
		}
		es = append(es[:min(len(es), MaxErrors):min(len(es), MaxErrors)],
			&Error{File: at.File, Pos: at.Pos, Msg: fmt.Sprintf("and %d more %s, not listed", more, plural(more, "problem")), More: more})
	}
	return es
}
