package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
)

// SignalError is the cause of a context cancelled by SIGINT or SIGTERM.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return "interrupted by " + signalName(e.Signal) }

// ExitCode is the shell's convention for a process ended by a signal.
func (e *SignalError) ExitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// NotifyContext is signal.NotifyContext for SIGINT and SIGTERM with two
// differences a user of kubectl or kind expects: the cause says which
// signal came (a *SignalError, so the exit status can be 130 or 143), and
// a second signal ends chaosloop at once, by that signal, even when a
// command's cleanup is slow.
//
// forwarded, when not nil, carries the signals chaosloop's supervising
// parent received, a byte each (see package crash). A Ctrl-C on a
// terminal reaches both processes, so a signal counts once however it
// came: the n-th signal is the n-th this process or its parent received,
// whichever is later.
func NotifyContext(parent context.Context, forwarded io.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	direct, relayed := make(chan os.Signal, 2), make(chan os.Signal, 2)
	signal.Notify(direct, os.Interrupt, syscall.SIGTERM)
	if forwarded != nil {
		go readSignals(forwarded, relayed)
	}
	done := make(chan struct{})
	go func() {
		var got, sent, acted int // received here, by the parent, acted on
		for {
			var s os.Signal
			select {
			case s = <-direct:
				got++
			case s = <-relayed:
				sent++
			case <-done:
				return
			}
			if max(got, sent) == acted {
				continue // the other process's copy of one already counted
			}
			if acted++; acted == 1 {
				cancel(&SignalError{Signal: s})
				continue
			}
			endBy(s)
		}
	}()
	return ctx, sync.OnceFunc(func() {
		signal.Stop(direct)
		close(done)
		cancel(nil)
	})
}

// readSignals passes on the SIGINT and SIGTERM bytes read from r until it
// closes (the parent is gone).
func readSignals(r io.Reader, out chan<- os.Signal) {
	b := make([]byte, 1)
	for {
		if _, err := r.Read(b); err != nil {
			return
		}
		if s := syscall.Signal(b[0]); s == syscall.SIGINT || s == syscall.SIGTERM {
			out <- s
		}
	}
}

// endBy ends chaosloop at once by s, with the signal's default action (or
// its exit status, 128+s, should that not end it).
func endBy(s os.Signal) {
	signal.Reset(s)
	if n, ok := s.(syscall.Signal); ok {
		_ = syscall.Kill(os.Getpid(), n)
	}
	os.Exit((&SignalError{Signal: s}).ExitCode())
}

// PanicError is a panic caught in a command: chaosloop itself failed.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Guard runs fn and turns a panic into a *PanicError, so that a bug exits
// 1 with a report instead of Go's exit status 2, which chaosloop uses for
// invalid input.
func Guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// Interruptible runs fn, which does not hold anything that needs cleaning
// up (decoding, linting, analysing), and returns as soon as ctx is done
// even if fn is still busy in a loop that does not look at ctx: Ctrl-C
// must end such a command within a second. The abandoned goroutine ends
// with the process.
func Interruptible(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- Guard(fn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err
		default:
		}
		return Interrupted(ctx)
	}
}

// Interrupted is the error of a command stopped by ctx: its cause (a
// *SignalError for a signal) or ctx.Err().
func Interrupted(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil {
		return c
	}
	return ctx.Err()
}

// SignalOf returns the signal that cancelled ctx, or nil.
func SignalOf(ctx context.Context) *SignalError {
	var se *SignalError
	if errors.As(context.Cause(ctx), &se) {
		return se
	}
	return nil
}
