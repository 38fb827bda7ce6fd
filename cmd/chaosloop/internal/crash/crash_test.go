package crash

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// Crash output as the Go runtime writes it (abridged), each after its
// "panic:" or "fatal error:" line.
const (
	panicOutput = "panic: boom\n\ngoroutine 7 [running]:\nmain.main.func1()\n\t/src/main.go:16 +0x39\n"
	oomOutput   = "\ngoroutine 1 gp=0x2b03 m=3 mp=0x2b03 [running]:\nruntime.throw({0x4ca1e7?, 0x2000?})\n" +
		"\t/go/src/runtime/panic.go:1229 +0x48 fp=0x2b sp=0x2b pc=0x4796a8\n" +
		"runtime.(*mcache).allocLarge(0x447ba5?, 0x4000000, 0x1)\n\t/go/src/runtime/mcache.go:259 +0x18d\n"
	mapsOutput = "\ngoroutine 6 [running]:\ninternal/runtime/maps.fatal({0x4cc081?, 0x0?})\n" +
		"\t/go/src/runtime/panic.go:1181 +0x18\nmain.main.func2()\n\t/src/main.go:23 +0x2d\n"
	deadlockOutput = "\ngoroutine 1 [select (no cases)]:\nmain.main()\n\t/src/main.go:9 +0x1d\n"
)

func exited(code int) syscall.WaitStatus             { return syscall.WaitStatus(code << 8) }
func signaled(sig syscall.Signal) syscall.WaitStatus { return syscall.WaitStatus(sig) }

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		name   string
		ws     syscall.WaitStatus
		out    string
		code   int
		crash  string // a prefix of the summary; "" for no crash
		signal syscall.Signal
	}{
		{name: "success", ws: exited(0), code: 0},
		{name: "findings", ws: exited(1), code: 1},
		{name: "invalid scenario", ws: exited(2), code: 2},
		{name: "run failed", ws: exited(4), code: 4},
		{name: "first signal", ws: exited(130), code: 130},
		{name: "panic", ws: exited(2), out: panicOutput, code: 1, crash: "panic: boom"},
		{name: "out of memory", ws: exited(2), out: oomOutput, code: 1, crash: "it ran out of memory (peak 250 MB)"},
		{name: "concurrent map writes", ws: exited(2), out: mapsOutput, code: 1, crash: "a fatal error in the Go runtime, raised in main.main.func2"},
		{name: "deadlock", ws: exited(2), out: deadlockOutput, code: 1, crash: "a fatal error in the Go runtime"},
		{name: "second Ctrl-C", ws: signaled(syscall.SIGINT), code: 130, signal: syscall.SIGINT},
		{name: "second SIGTERM", ws: signaled(syscall.SIGTERM), code: 143, signal: syscall.SIGTERM},
		{name: "closed pipe", ws: signaled(syscall.SIGPIPE), code: 141, signal: syscall.SIGPIPE},
		{name: "killed", ws: signaled(syscall.SIGKILL), code: 1, crash: "killed by SIGKILL: the kernel's out-of-memory killer"},
		{name: "GOTRACEBACK=crash", ws: signaled(syscall.SIGABRT), out: panicOutput, code: 1, crash: "panic: boom"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := judge(c.ws, []byte(c.out), 250<<10)
			require.Equal(t, c.code, e.code)
			require.Equal(t, c.signal, e.signal)
			if c.crash == "" {
				require.Empty(t, e.crash)
				return
			}
			require.True(t, strings.HasPrefix(e.crash, c.crash), "summary %q", e.crash)
			require.Contains(t, e.details, "peak memory 250 MB")
			require.Contains(t, e.details, c.out)
		})
	}
}

func TestReportWritesCrashFile(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var w bytes.Buffer
	name := Report{Summary: "panic: \x1b[2Jhostile", Version: "v1", Args: []string{"validate", "x.yaml"}, Details: "goroutine 1 [running]:"}.Write(&w)
	require.NotEmpty(t, name)
	require.Equal(t, os.Getenv("TMPDIR"), filepath.Dir(name))
	require.Contains(t, w.String(), `chaosloop itself failed: panic: \x1b[2Jhostile`, "escaped for the terminal")
	require.Contains(t, w.String(), name)
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	require.Contains(t, string(b), "chaosloop v1\nargs: [\"validate\" \"x.yaml\"]")
	require.Contains(t, string(b), "goroutine 1 [running]:")
}

func TestUnsupervised(t *testing.T) {
	require.True(t, unsupervised([]string{"internal", "handler"}))
	require.True(t, unsupervised([]string{"__complete", "validate", ""}))
	require.False(t, unsupervised([]string{"validate", "internal"}))
	require.False(t, unsupervised(nil))
}
