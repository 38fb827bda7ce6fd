package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CrashCLI builds chaosloop from cmdDir, runs `chaosloop up FILE args...`
// on the scenario source, ends it with sig once started says the lab is
// part-way up (or after wait), and returns once it is gone: a Harness's
// Crash.
func CrashCLI(t *testing.T, cmdDir, name string, src []byte, sig os.Signal, wait time.Duration, started func() bool, args ...string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "chaosloop")
	out, err := exec.Command("go", "build", "-o", bin, cmdDir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	file := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(file, src, 0o644))
	up := exec.Command(bin, append([]string{"up", file}, args...)...)
	require.NoError(t, up.Start())
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && !started() {
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, up.Process.Signal(sig))
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = up.Process.Signal(syscall.SIGKILL)
		<-done
		t.Errorf("chaosloop up did not end within 2 minutes of %v", sig)
	}
}

// ProcessesUnder lists the processes whose command line names a path
// under dir: what a lab started from its state and left behind.
func ProcessesUnder(dir string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err == nil && strings.Contains(string(b), dir+"/") {
			out = append(out, fmt.Sprintf("process %s: %.80s", filepath.Base(filepath.Dir(c)), strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	return out
}
