package crash

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ending is how a supervised child ended, as chaosloop reports it.
type ending struct {
	code int
	// signal, when not 0, is the one to end this process by too (an
	// interruption or a closed pipe, not a crash).
	signal syscall.Signal
	// crash summarises a crash in one line, "" when there was none;
	// details is the crash report's body.
	crash, details string
}

// goCrashStatus is the Go runtime's exit status after an unrecovered
// panic or a fatal error, also chaosloop's for an invalid scenario: the
// crash output tells them apart (the runtime writes it only when dying).
const goCrashStatus = 2

// judge maps the child's wait status, its crash output and its peak
// memory (ru_maxrss, KB) to chaosloop's ending.
func judge(ws syscall.WaitStatus, out []byte, peakKB int64) ending {
	var how string
	switch {
	case ws.Exited() && (ws.ExitStatus() != goCrashStatus || len(out) == 0):
		return ending{code: ws.ExitStatus()}
	case ws.Exited():
		how = fmt.Sprintf("exit status %d", ws.ExitStatus())
	case interruption(ws.Signal()):
		return ending{code: 128 + int(ws.Signal()), signal: ws.Signal()}
	default:
		how = "killed by " + unix.SignalName(ws.Signal())
	}
	e := ending{code: 1, crash: summarize(out, peakKB)}
	if e.crash == "" {
		e.crash = how
		if ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			e.crash += ": the kernel's out-of-memory killer, or a kill -9"
		}
	}
	e.details = fmt.Sprintf("ended: %s; peak memory %d MB\n", how, peakKB>>10)
	if fatalError(out) {
		e.details += "(the runtime's \"fatal error: …\" line went to standard error only)\n"
	}
	e.details += "\n" + string(out)
	return e
}

// interruption reports a signal that ends chaosloop without it failing:
// a second Ctrl-C or SIGTERM (whose default action the child restores),
// a hang-up, or a pipe its output went to closing.
func interruption(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE:
		return true
	}
	return false
}

// summarize names a crash from the runtime's crash output: a panic's
// first line ("panic: …", or the signal for one in non-Go code). A fatal
// error's own line ("fatal error: concurrent map writes") is printed
// before the runtime starts dying, so it reaches standard error only: the
// function that threw stands in for it, and running out of memory is
// recognised by the allocator functions that throw it.
func summarize(out []byte, peakKB int64) string {
	out = bytes.TrimLeft(out, "\n")
	if len(out) == 0 {
		return ""
	}
	if !fatalError(out) {
		first, _, _ := bytes.Cut(out, []byte("\n"))
		return string(first)
	}
	fn := thrower(out)
	if outOfMemory(fn) {
		return fmt.Sprintf("it ran out of memory (peak %d MB)", peakKB>>10)
	}
	if fn == "" {
		return "a fatal error in the Go runtime"
	}
	return "a fatal error in the Go runtime, raised in " + fn
}

// fatalError reports crash output that starts with a stack: a fatal
// error's, whose own line went to standard error only.
func fatalError(out []byte) bool {
	out = bytes.TrimLeft(out, "\n")
	return bytes.HasPrefix(out, []byte("goroutine ")) || bytes.HasPrefix(out, []byte("runtime stack:"))
}

// thrower returns the function that called the runtime's throw or fatal
// (runtime.throw, internal/runtime/maps.fatal, sync.fatal…): the second
// function line of the first stack.
func thrower(out []byte) string {
	var prev string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		i := strings.LastIndexByte(line, '(')
		if i <= 0 || !strings.HasSuffix(line, ")") || strings.HasPrefix(line, "goroutine ") {
			continue
		}
		fn := line[:i]
		if prev != "" {
			return fn
		}
		if !strings.HasSuffix(fn, ".throw") && !strings.HasSuffix(fn, ".fatal") {
			return ""
		}
		prev = fn
	}
	return ""
}

// outOfMemory reports the runtime functions that throw "out of memory"
// when the kernel refuses memory. (*mcache).refill throws on a corrupt
// heap too, which its "fatal error:" line on standard error tells apart.
func outOfMemory(fn string) bool {
	switch fn {
	case "runtime.(*mcache).refill", "runtime.(*mcache).allocLarge", "runtime.sysMapOS", "runtime.sysUsedOS",
		"runtime.(*mheap).sysAlloc", "runtime.persistentalloc1", "runtime.stackalloc", "runtime.stackpoolalloc":
		return true
	}
	return false
}
