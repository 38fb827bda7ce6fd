package scenarios

import (
	"fmt"
	"unicode/utf8"
)

// checkText rejects what YAML allows in no stream, before any parser sees
// it: invalid UTF-8 (a UTF-16 file, binary data) and control characters
// other than tab and line breaks (NUL, ESC, DEL, C1 controls).
func checkText(data []byte) *Error {
	line, col := 1, 1
	i := 0
	if len(data) >= 3 && string(data[:3]) == "\ufeff" {
		i = 3
	}
	for i < len(data) {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n' || (c == '\r' && (i+1 == len(data) || data[i+1] != '\n')):
				line, col = line+1, 0
			case c == '\r' || c == '\t' || (c >= 0x20 && c != 0x7f):
			default:
				return &Error{Pos: Pos{line, col}, Msg: fmt.Sprintf("control character %U is not allowed in a scenario file", c)}
			}
			i, col = i+1, col+1
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return &Error{Pos: Pos{line, col}, Msg: fmt.Sprintf("invalid UTF-8 (byte %#02x): a scenario file is UTF-8 text", c)}
		case r <= 0x9f && r != 0x85, r == 0xfffe, r == 0xffff:
			return &Error{Pos: Pos{line, col}, Msg: fmt.Sprintf("control character %U is not allowed in a scenario file", r)}
		}
		i, col = i+n, col+1
	}
	return nil
}

// goccyMaxBytes and goccyMaxNesting bound the input handed to goccy/go-yaml
// to locate a syntax error: it costs about 1 KB per token and its memory
// grows with the square of the nesting (20,000 levels took 666 MB).
const (
	goccyMaxBytes   = 64 << 10
	goccyMaxNesting = 2_000
)

// goccySafe reports whether goccy/go-yaml may parse data. It does not trust
// the scanner: every byte that could open a level ("[", "{", and "-"
// before a blank) counts, wherever it is. Nesting by indentation alone
// cannot go deeper than about 360 levels in goccyMaxBytes.
func goccySafe(data []byte) bool {
	if len(data) > goccyMaxBytes {
		return false
	}
	n := 0
	for i, c := range data {
		switch c {
		case '[', '{':
			n++
		case '-':
			if i+1 == len(data) || endsToken(data[i+1]) {
				n++
			}
		}
	}
	return n <= goccyMaxNesting
}
