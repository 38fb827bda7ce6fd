package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCrashes: a crash Go cannot recover from — a panic in a background
// goroutine, a fatal runtime error, running out of memory under the
// hostile tests' limits — exits 1 ("chaosloop itself failed"), never the
// 2 of an invalid scenario, and names a crash file holding the stack. The
// supervised child causes each on purpose (CHAOSLOOP_TEST_CRASH, see
// package crash).
func TestCrashes(t *testing.T) {
	bin := buildBinary(t)
	for _, c := range []struct{ kind, want, stack string }{
		{"goroutine-panic", "chaosloop itself failed: panic: a panic in a background goroutine", "crash.crashForTest"},
		{"fatal-error", "chaosloop itself failed: a fatal error in the Go runtime, raised in ", "sync.(*Mutex)"},
		{"out-of-memory", "chaosloop itself failed: it ran out of memory (peak ", "crash.exhaustMemory"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			tmp := t.TempDir()
			o := runLimitedEnv(t, []string{"CHAOSLOOP_TEST_CRASH=" + c.kind, "TMPDIR=" + tmp}, bin, "validate", "../../scenarios/quickstart.yaml")
			require.Empty(t, o.signal)
			require.Equal(t, 1, o.code, "stderr: %.2000s", o.stderr)
			require.Contains(t, o.stderr, c.want)
			m := regexp.MustCompile(`report it with the command you ran and (\S+) \(the stack trace\)`).FindStringSubmatch(o.stderr)
			require.NotNil(t, m, "crash file named: %s", o.stderr)
			require.Equal(t, tmp, filepath.Dir(m[1]))
			b, err := os.ReadFile(m[1])
			require.NoError(t, err)
			require.Contains(t, string(b), `args: ["validate" "../../scenarios/quickstart.yaml"]`)
			require.Contains(t, string(b), c.stack, "the stack trace is in the crash file")
			t.Logf("%s: exit %d in %v, peak %d MB", c.kind, o.code, o.wall.Round(time.Millisecond), o.peakRSSKBytes>>10)
		})
	}
}

// TestSupervisedSignals: the supervising parent passes a SIGTERM sent to
// it alone on to the child, and a Ctrl-C that reaches both (the
// terminal signals the whole process group) counts once — the command is
// interrupted (130, its cleanup done), not ended at once by the default
// action of a second signal. Either way within a second.
func TestSupervisedSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildBinary(t)
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		group bool
	}{
		{"SIGTERM to the parent", syscall.SIGTERM, false},
		{"SIGINT to the parent", syscall.SIGINT, false},
		{"Ctrl-C to the process group", syscall.SIGINT, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, "validate", "-")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdin, err := cmd.StdinPipe() // nobody writes: validate waits
			require.NoError(t, err)
			defer stdin.Close()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			waitChild(t, cmd.Process.Pid)
			pid := cmd.Process.Pid
			if c.group {
				pid = -pid
			}
			start := time.Now()
			require.NoError(t, syscall.Kill(pid, c.sig))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("still running 5 s after %v: %s", c.sig, stderr.String())
			}
			require.Less(t, time.Since(start), time.Second)
			require.Equal(t, 128+int(c.sig), cmd.ProcessState.ExitCode(), "exited, not killed by a second signal: %s", stderr.String())
			require.Contains(t, stderr.String(), "interrupted by")
		})
	}
}

// waitChild waits until the supervising parent pid has started its child,
// then a moment more for the child to set up its signal handling.
func waitChild(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lists, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		require.NoError(t, err)
		for _, l := range lists {
			if b, _ := os.ReadFile(l); len(bytes.TrimSpace(b)) > 0 {
				time.Sleep(300 * time.Millisecond)
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "no child process")
		time.Sleep(20 * time.Millisecond)
	}
}
