// Package crash reports chaosloop's own failures, so that they exit 1
// ("chaosloop itself failed") with a crash file for a bug report, never the
// 2 of an invalid scenario: a panic a command's goroutine recovers
// (Report), and — through a supervising parent process (Supervise, Attach)
// — every crash Go cannot recover from, such as a panic in a background
// goroutine or a fatal runtime error (out of memory, concurrent map
// writes), for which the Go runtime itself exits 2. (Not
// mitchellh/panicwrap: it reads the child's standard error through a pipe,
// so that a terminal stops being one to the child, and drops a SIGINT sent
// to the parent alone.)
package crash

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// Report is chaosloop's account of its own failure.
type Report struct {
	// Summary is one line: "panic: …", "it ran out of memory".
	Summary string
	// Version is the binary's (versioncmd's Short), Args its command line.
	Version string
	Args    []string
	// Details holds the stack traces and how the process ended.
	Details string
}

// Write tells the user on w that chaosloop itself failed and writes the
// report to $TMPDIR/chaosloop-crash-*.txt, naming it; when that file cannot
// be written the report goes to w instead. It returns the file's name, ""
// in that case.
func (r Report) Write(w io.Writer) string {
	fmt.Fprintf(w, "chaosloop itself failed: %s\n", oneLine(r.Summary))
	text := fmt.Sprintf("chaosloop %s\nargs: %q\n\n%s\n\n%s", r.Version, r.Args, r.Summary, r.Details)
	f, err := os.CreateTemp("", "chaosloop-crash-*.txt")
	if err == nil {
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(w, "%s\n", text)
		fmt.Fprintln(w, "This is a bug in chaosloop, not in your input: please report it with the command you ran and the lines above.")
		return ""
	}
	fmt.Fprintf(w, "This is a bug in chaosloop, not in your input: please report it with the command you ran and %s (the stack trace).\n", f.Name())
	return f.Name()
}

// oneLine escapes what would break the summary's line or rewrite a
// terminal: a panic's value may hold text of the input.
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsGraphic(r) {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
