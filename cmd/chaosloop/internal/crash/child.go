package crash

import (
	"os"
	"runtime/debug"
	"sync"
	"syscall"
)

// Attach connects this process to its supervising parent when Supervise
// started it, and must come first in main: the Go runtime's crash output
// goes to the parent too, and it returns the pipe on which the parent
// forwards the signals it receives (for cli.NotifyContext). It returns
// nil when this process is not a supervised child.
func Attach() *os.File {
	if os.Getenv(childEnv) == "" {
		return nil
	}
	_ = os.Unsetenv(childEnv)
	out := os.NewFile(crashFD, "crash-output")
	// SetCrashOutput keeps a close-on-exec copy: no process this one
	// starts holds the parent's pipe open.
	_ = debug.SetCrashOutput(out, debug.CrashOptions{})
	_ = out.Close()
	syscall.CloseOnExec(notesFD)
	notes := os.NewFile(notesFD, "forwarded-signals")
	if kind := os.Getenv(testCrashEnv); kind != "" {
		_ = os.Unsetenv(testCrashEnv)
		crashForTest(kind)
	}
	return notes
}

// testCrashEnv is for the supervisor's tests only (cmd/chaosloop's
// TestCrashes): it names a crash a supervised child causes at once, in a
// background goroutine — "goroutine-panic", "fatal-error" (unlocking an
// unlocked mutex) or "out-of-memory" (under a 1 GiB address-space limit it
// sets itself, so that it never takes the machine's memory). Only a
// supervised child honours it.
const testCrashEnv = "CHAOSLOOP_TEST_CRASH"

func crashForTest(kind string) {
	var crash func()
	switch kind {
	case "goroutine-panic":
		crash = func() { panic("a panic in a background goroutine (" + testCrashEnv + ")") }
	case "fatal-error":
		crash = func() {
			var mu sync.Mutex
			mu.Unlock()
		}
	case "out-of-memory":
		crash = exhaustMemory
	default:
		return
	}
	go crash()
	select {} // the crash ends the process
}

// exhaustMemory makes the runtime die of "out of memory": it asks for a
// TiB under an address-space limit of at most 1 GiB.
func exhaustMemory() {
	limit := syscall.Rlimit{Cur: 1 << 30, Max: 1 << 30}
	var cur syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &cur); err == nil && cur.Max < limit.Max {
		limit = cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &limit); err != nil {
		panic("cannot limit the address space: " + err.Error())
	}
	b := make([]byte, 1<<40) // refused under the limit, before a page is touched
	b[0] = 1
}
