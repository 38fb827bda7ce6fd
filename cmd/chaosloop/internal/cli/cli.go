// Package cli holds what every chaosloop command shares: the streams it
// writes to, its logger, and the exit codes.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/mattn/go-isatty"
)

// Exit codes, documented in the README.
const (
	ExitOK       = 0
	ExitFail     = 1 // findings with errors, a failure breaks a service, or chaosloop failed
	ExitInvalid  = 2 // invalid scenario file or usage
	ExitSafety   = 3 // run: acknowledged loss or money not conserved
	ExitLiveness = 4 // run: quorum, throughput or recovery not as expected
	ExitStopped  = 5 // fault --hold or run on a real cluster: a stop condition was met, every fault recovered
)

// ExitError carries the exit status a command wants. A nil Err means the
// command already reported what went wrong (or nothing did: a verdict).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an ExitError with a code and no further message.
func Exit(code int) error { return &ExitError{Code: code} }

// Invalid wraps err as an invalid-input error (exit 2).
func Invalid(err error) error { return &ExitError{Code: ExitInvalid, Err: err} }

// Usagef reports a usage error (exit 2).
func Usagef(format string, args ...any) error {
	return &ExitError{Code: ExitInvalid, Err: fmt.Errorf(format, args...)}
}

// CodeOf maps an error to its exit status.
func CodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFail
}

// Streams are a command's input and outputs; tests pass buffers.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Std returns the process's streams.
func Std() Streams { return Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }

// Env is what commands receive from the root command.
type Env struct {
	Streams
	Log *slog.Logger
	// Color: use ANSI colours on Out.
	Color bool
}

// UseColor decides colour for mode auto|always|never on w.
func UseColor(mode string, w io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		if os.Getenv("NO_COLOR") != "" {
			return false, nil
		}
		f, ok := w.(*os.File)
		return ok && isatty.IsTerminal(f.Fd()), nil
	}
	return false, Usagef("--color must be auto, always or never, not %q", mode)
}
