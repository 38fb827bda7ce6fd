package scenarios

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// scanner reads a scenario file's raw bytes before any YAML parser does, the
// way a YAML parser would tokenise them, to enforce MaxDepth and MaxValues
// (parsers build the whole tree first, and goccy/go-yaml has no depth limit
// at all) and to remember lexical problems that yaml.v3 reports without a
// column. Its counts never fall below the parsed tree's (fuzzed against
// yaml.v3): where YAML is ambiguous it counts more.
type scanner struct {
	data       []byte
	i          int // offset of the next byte
	line, col  int // 1-based position of data[i]; col counts runes
	afterBlank bool

	block []blockLevel // open block collections, innermost last
	flow  []flowOpen   // open flow collections, innermost last
	// plainIndent is the block indentation a multi-line plain scalar's
	// continuation lines must exceed; noPlain when none continues.
	plainIndent int
	// literal is the open block scalar (| or >), if any.
	literal *literal

	values, depth int
	// slot is set after a "-" or a key, until a value fills it: an empty
	// one is a value too.
	slot    bool
	anchors map[string]bool
	// docStarts are where a second, third... document begins.
	docStarts []Pos
	docEnded  bool
	content   bool // a value was seen

	limit *Error // a hard limit crossed: scanning stopped
	// problem is the first lexical problem seen; byKind the first of each
	// kind, matched with yaml.v3's message when its line is not the
	// problem's.
	problem *scanProblem
	byKind  map[problemKind]*scanProblem
}

type problemKind int

const (
	unclosedFlow problemKind = iota
	unclosedQuote
	badEscape
	undefinedAlias
	tabIndent
)

// problemKinds maps parts of yaml.v3's messages to the problem they name.
var problemKinds = map[string]problemKind{
	"',' or ']'":               unclosedFlow,
	"',' or '}'":               unclosedFlow,
	"unexpected end of stream": unclosedQuote,
	"hexdecimal":               badEscape,
	"unknown escape":           badEscape,
	"unknown anchor":           undefinedAlias,
	"tab character":            tabIndent,
}

const noPlain = -2

type blockLevel struct {
	indent int // 0-based column of its key or "-"
	seq    bool
}

type flowOpen struct {
	at Pos
	c  byte
	// entry is set at the start of an entry: after the bracket or a ','.
	entry bool
}

type literal struct {
	parent, indent int // indent -1: taken from the first non-empty line
}

// scanProblem is the first lexical error seen: what yaml.v3 reports only
// with a line, here with its column and a plainer message.
type scanProblem struct {
	at  Pos
	msg string
}

// scan checks data against MaxDepth and MaxValues. The returned scanner
// holds what syntax errors are matched against; err is set when a limit is
// crossed.
func scan(data []byte) (*scanner, *Error) {
	s := &scanner{data: data, line: 1, col: 1, plainIndent: noPlain, anchors: map[string]bool{}, afterBlank: true}
	if len(data) >= 3 && string(data[:3]) == "\ufeff" {
		s.i = 3
	}
	for s.i < len(s.data) && s.limit == nil {
		s.lineStart()
	}
	if len(s.flow) > 0 {
		f := s.flow[len(s.flow)-1]
		s.note(unclosedFlow, f.at, fmt.Sprintf("this '%c' is never closed", f.c))
	}
	return s, s.limit
}

func (s *scanner) peek(k int) byte {
	if s.i+k < len(s.data) {
		return s.data[s.i+k]
	}
	return 0
}

func (s *scanner) eof() bool { return s.i >= len(s.data) }

func (s *scanner) pos() Pos { return Pos{s.line, s.col} }

// adv moves past one character that is not a line break.
func (s *scanner) adv() {
	c := s.data[s.i]
	s.afterBlank = c == ' ' || c == '\t'
	if c < utf8.RuneSelf {
		s.i++
	} else {
		_, n := utf8.DecodeRune(s.data[s.i:])
		s.i += n
	}
	s.col++
}

// newline moves past a line break (CR LF, LF or CR).
func (s *scanner) newline() {
	if s.data[s.i] == '\r' && s.peek(1) == '\n' {
		s.i++
	}
	s.i++
	s.line++
	s.col = 1
	s.afterBlank = true
}

func isBreak(c byte) bool { return c == '\n' || c == '\r' }
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// endsToken reports whether c ends a token: a blank, a line break or the
// end of input.
func endsToken(c byte) bool { return c == 0 || isBlank(c) || isBreak(c) }

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

func (s *scanner) skipBlanks() {
	for !s.eof() && isBlank(s.data[s.i]) {
		s.adv()
	}
}

// endLine moves past the rest of the line and its line break.
func (s *scanner) endLine() {
	for !s.eof() && !isBreak(s.data[s.i]) {
		s.adv()
	}
	if !s.eof() {
		s.newline()
	}
}

func (s *scanner) note(kind problemKind, at Pos, msg string) {
	p := &scanProblem{at, msg}
	if s.problem == nil || at.Line < s.problem.at.Line || (at.Line == s.problem.at.Line && at.Column < s.problem.at.Column) {
		s.problem = p
	}
	if s.byKind == nil {
		s.byKind = map[problemKind]*scanProblem{}
	}
	if _, ok := s.byKind[kind]; !ok {
		s.byKind[kind] = p
	}
}

// problemFor returns the scanner's problem matching a yaml.v3 message.
func (s *scanner) problemFor(msg string) *scanProblem {
	for part, kind := range problemKinds {
		if p := s.byKind[kind]; p != nil && strings.Contains(msg, part) {
			return p
		}
	}
	return nil
}

// count records n more values and reports whether MaxValues still holds.
func (s *scanner) count(n int) bool {
	s.values += n
	s.content, s.slot = true, false
	if s.docEnded {
		s.docStarts = append(s.docStarts, s.pos())
		s.docEnded = false
	}
	if s.values > MaxValues && s.limit == nil {
		s.limit = &Error{Pos: s.pos(), Msg: fmt.Sprintf("too many YAML values: a scenario file holds at most %d", MaxValues)}
	}
	return s.limit == nil
}

// nest records a collection opened at depth d.
func (s *scanner) nest(d int, at Pos) bool {
	s.depth = max(s.depth, d)
	if d > MaxDepth && s.limit == nil {
		s.limit = &Error{Pos: at, Msg: fmt.Sprintf("lists and mappings nested deeper than %d levels", MaxDepth)}
	}
	return s.limit == nil
}

// open enters the block collection whose key or "-" is at at, unless it is
// the one already open at its column.
func (s *scanner) open(at Pos, seq bool) {
	indent := at.Column - 1
	if n := len(s.block); n > 0 && s.block[n-1].indent == indent {
		if s.block[n-1].seq == seq {
			return
		}
		// A mapping key at the column of a sequence that is the value of
		// the mapping's previous key: back to that mapping.
		if !seq && n > 1 && s.block[n-2].indent == indent && !s.block[n-2].seq {
			s.block = s.block[:n-1]
			return
		}
	}
	s.block = append(s.block, blockLevel{indent, seq})
	if s.count(1) {
		s.nest(len(s.block), at)
	}
}

func (s *scanner) blockIndent() int {
	if len(s.block) == 0 {
		return -1
	}
	return s.block[len(s.block)-1].indent
}

// lineStart reads one line in block context (or a whole flow collection or
// quoted scalar starting on it).
func (s *scanner) lineStart() {
	indent := 0
	for s.peek(0) == ' ' {
		s.adv()
		indent++
	}
	if l := s.literal; l != nil {
		if s.blankLine() {
			s.endLine()
			return
		}
		if l.indent < 0 {
			l.indent = max(indent, l.parent+1, 1)
		}
		if indent >= l.indent {
			s.endLine()
			return
		}
		s.literal = nil
	}
	tab := s.peek(0) == '\t'
	tabAt := s.pos()
	s.skipBlanks()
	switch c := s.peek(0); {
	case s.eof():
		return
	case isBreak(c):
		s.newline()
		return
	case c == '#':
		s.plainIndent = noPlain
		s.endLine()
		return
	}
	if indent == 0 && s.col == 1 && s.marker() {
		return
	}
	if s.plainIndent != noPlain && indent > s.plainIndent {
		s.plainScalar(plainMore) // a continuation line of a multi-line plain scalar
		s.endLine()
		return
	}
	s.plainIndent = noPlain
	if tab {
		s.note(tabIndent, tabAt, "a tab indents this line (YAML indents with spaces)")
	}
	for n := len(s.block); n > 0 && s.block[n-1].indent > indent; n-- {
		s.block = s.block[:n-1]
	}
	s.blockNode()
}

// blankLine reports whether the rest of the line is blank.
func (s *scanner) blankLine() bool {
	for j := s.i; j < len(s.data); j++ {
		if isBreak(s.data[j]) {
			return true
		}
		if !isBlank(s.data[j]) {
			return false
		}
	}
	return true
}

// marker handles a line starting with a document marker or a directive.
func (s *scanner) marker() bool {
	rest := s.data[s.i:]
	switch {
	case len(rest) >= 3 && (string(rest[:3]) == "---" || string(rest[:3]) == "...") && endsToken(s.peek(3)):
		if rest[0] == '-' && s.content && !s.docEnded {
			s.docStarts = append(s.docStarts, s.pos())
		}
		s.docEnded = rest[0] == '.'
		s.block, s.plainIndent = s.block[:0], noPlain
		s.values++ // a document holds at least an empty value
		s.adv()
		s.adv()
		s.adv()
		if rest[0] == '-' {
			s.blockNode()
		} else {
			s.endLine()
		}
		return true
	case rest[0] == '%':
		s.endLine()
		return true
	}
	return false
}

// blockNode reads nodes in block context up to the end of the line.
func (s *scanner) blockNode() {
	for s.limit == nil {
		s.skipBlanks()
		c, at := s.peek(0), s.pos()
		switch {
		case s.eof() || isBreak(c) || c == '#':
			if s.slot {
				s.count(1) // an empty value (or one on the next lines)
			}
			s.endLine()
			return
		case (c == '-' || c == '?' || c == ':') && endsToken(s.peek(1)):
			s.open(at, c == '-')
			if c != '-' {
				s.count(1) // the value after "?", or the key before ":", if empty
			}
			s.slot = true
			s.adv()
			continue
		case c == '&' || c == '!':
			s.property(false)
			continue
		case c == '|' || c == '>':
			s.count(1)
			s.blockScalar()
			return
		}
		if !s.count(1) {
			return
		}
		switch c {
		case '[', '{':
			// +1: a collection followed by ':' is the key of a mapping
			// opened after it.
			s.flowCollection(len(s.block) + 1)
		case '"', '\'':
			s.quoted()
		case '*':
			s.alias()
		default:
			if s.plainScalar(plainBlock) {
				s.open(at, false)
				s.slot = true
			} else if s.eof() || isBreak(s.peek(0)) {
				s.plainIndent = s.blockIndent()
			}
			continue
		}
		s.skipBlanks()
		if s.peek(0) == ':' && endsToken(s.peek(1)) {
			s.adv()
			s.open(at, false)
			s.slot = true
		}
	}
}

// blockScalar reads a | or > header; the lines that follow are skipped as
// its content while indented enough.
func (s *scanner) blockScalar() {
	parent := s.blockIndent()
	l := &literal{parent: parent, indent: -1}
	for s.adv(); !s.eof() && !endsToken(s.peek(0)); s.adv() {
		if c := s.peek(0); c >= '1' && c <= '9' {
			l.indent = int(c-'0') + max(parent, 0)
		}
	}
	s.literal = l
	s.endLine()
}

// property skips an anchor (&name) or a tag (!tag), remembering anchors.
// It counts a value: a property with nothing after it is an empty one.
func (s *scanner) property(inFlow bool) {
	s.count(1)
	if s.peek(0) == '&' {
		s.anchors[s.name()] = true
		return
	}
	for s.adv(); !s.eof() && !endsToken(s.peek(0)) && !(inFlow && isFlowIndicator(s.peek(0))); {
		s.adv()
	}
}

// name skips the & or * before an anchor's name and returns the name:
// letters, digits, '-' and '_', as yaml.v3 reads it.
func (s *scanner) name() string {
	s.adv()
	start := s.i
	for c := s.peek(0); c == '-' || c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z'); c = s.peek(0) {
		s.adv()
	}
	return string(s.data[start:s.i])
}

// alias skips *name, noting a name no earlier anchor defined.
func (s *scanner) alias() {
	at := s.pos()
	if name := s.name(); !s.anchors[name] {
		s.note(undefinedAlias, at, fmt.Sprintf("alias %q refers to no anchor defined before it", clip("*"+name)))
	}
}

// Where a plain scalar is read: in block context (it may be a mapping
// key), in flow context (flow indicators end it), or on a continuation
// line of a multi-line one (only a comment or the line break ends it).
const (
	plainBlock = iota
	plainFlow
	plainMore
)

// plainScalar skips a plain scalar up to a comment or the line break. In
// block context it reports whether the scalar is a mapping key (ended by
// ": ", which it skips).
func (s *scanner) plainScalar(mode int) bool {
	for !s.eof() {
		c := s.peek(0)
		switch {
		case isBreak(c), c == '#' && s.afterBlank:
			return false
		case mode == plainFlow && (isFlowIndicator(c) || c == ':' && (endsToken(s.peek(1)) || isFlowIndicator(s.peek(1)))):
			return false
		case mode == plainBlock && c == ':' && endsToken(s.peek(1)):
			s.adv()
			return true
		}
		s.adv()
	}
	return false
}

// flowCollection reads a [...] or {...} collection, which may span lines.
// base is the depth of the block context it sits in.
func (s *scanner) flowCollection(base int) {
	depth := base
	for s.limit == nil && !s.eof() {
		c := s.peek(0)
		var top *flowOpen
		if n := len(s.flow); n > 0 {
			top = &s.flow[n-1]
		}
		switch {
		case isBreak(c):
			s.newline()
		case isBlank(c):
			s.adv()
		case c == ',':
			top.entry = true
			s.adv()
		case c == '#' && s.afterBlank:
			for !s.eof() && !isBreak(s.peek(0)) {
				s.adv()
			}
		case c == '&' || c == '!':
			s.property(true)
		case c == '[' || c == '{':
			depth += flowWeight(c)
			if !s.count(s.slotValues(top)) || !s.nest(depth, s.pos()) {
				return
			}
			s.flow = append(s.flow, flowOpen{s.pos(), c, true})
			s.adv()
		case c == ']' || c == '}':
			if top.c+2 != c { // '['+2 == ']', '{'+2 == '}'
				s.note(unclosedFlow, s.pos(), fmt.Sprintf("'%c' does not close the '%c' at line %d, column %d", c, top.c, top.at.Line, top.at.Column))
			}
			depth -= flowWeight(top.c)
			s.flow = s.flow[:len(s.flow)-1]
			s.adv()
			if len(s.flow) == 0 {
				return
			}
		case (c == '?' || c == ':' || c == '-') && (endsToken(s.peek(1)) || isFlowIndicator(s.peek(1))):
			s.flowIndicator(c, top)
		default:
			if !s.count(s.slotValues(top)) {
				return
			}
			switch c {
			case '"', '\'':
				s.quoted()
			case '*':
				s.alias()
			default:
				s.plainScalar(plainFlow)
			}
		}
	}
}

// slotValues is how many values a value in a flow collection counts for:
// one, or two as a mapping entry's key (its value may be left empty).
func (s *scanner) slotValues(top *flowOpen) int {
	if top == nil {
		return 1 // the outermost collection
	}
	n := 1
	if top.c == '{' && top.entry {
		n = 2
	}
	top.entry = false
	return n
}

// flowIndicator counts the values a "?", ":" or "-" in a flow collection
// may stand for: "[a: b]" is a list holding a mapping, "{: b}" has an empty
// key.
func (s *scanner) flowIndicator(c byte, top *flowOpen) {
	switch {
	case c == ':' && top.c == '[':
		s.count(3) // the mapping, and its key and value if empty
	case c == ':' && top.entry, c == '-':
		s.count(2)
	case c == '?' && top.c == '[':
		s.count(2) // the mapping and its value if empty
	}
	if c == ':' {
		top.entry = false
	}
	s.adv()
}

// flowWeight is the depth a flow collection adds: an entry of a [ list may
// be an implicit single-pair mapping ([a: b]), one level more.
func flowWeight(open byte) int {
	if open == '[' {
		return 2
	}
	return 1
}

// quoted skips a single- or double-quoted scalar, which may span lines,
// noting bad escapes and a missing closing quote.
func (s *scanner) quoted() {
	q, start := s.peek(0), s.pos()
	s.adv()
	for !s.eof() {
		c := s.peek(0)
		switch {
		case isBreak(c):
			s.newline()
		case c == q && q == '\'' && s.peek(1) == '\'':
			s.adv()
			s.adv()
		case c == q:
			s.adv()
			return
		case c == '\\' && q == '"':
			s.escape()
		default:
			s.adv()
		}
	}
	s.note(unclosedQuote, start, fmt.Sprintf("the string starting with %c is never closed", q))
}

// hexDigits is how many hexadecimal digits each numeric escape takes.
var hexDigits = map[byte]int{'x': 2, 'u': 4, 'U': 8}

// escape skips a backslash escape of a double-quoted scalar.
func (s *scanner) escape() {
	at := s.pos()
	s.adv()
	c := s.peek(0)
	switch {
	case s.eof():
		return
	case isBreak(c):
		s.newline()
		return
	case hexDigits[c] > 0:
		s.adv()
		for range hexDigits[c] {
			if !isHex(s.peek(0)) {
				s.note(badEscape, at, fmt.Sprintf("invalid escape: \\%c takes %d hexadecimal digits", c, hexDigits[c]))
				return
			}
			s.adv()
		}
		return
	}
	switch c {
	case '0', 'a', 'b', 't', '\t', 'n', 'v', 'f', 'r', 'e', ' ', '"', '/', '\\', 'N', '_', 'L', 'P':
	default:
		r, _ := utf8.DecodeRune(s.data[s.i:])
		s.note(badEscape, at, fmt.Sprintf("invalid escape %q in a double-quoted string", `\`+string(r)))
	}
	s.adv()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
