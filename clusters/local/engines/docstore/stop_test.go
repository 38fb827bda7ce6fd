package docstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// children lists the PIDs whose parent is pid.
func children(pid int) []*proc.Record {
	return procTable()[pid]
}

// TestEndTreeKillsIgnoringTree: a process that ignores SIGTERM, with
// children that ignore it too, is SIGKILLed after the grace, children
// included, and endTree returns only once all are gone.
func TestEndTreeKillsIgnoringTree(t *testing.T) {
	dir := t.TempDir()
	r, err := proc.Start(dir, proc.Spec{Name: "tree", Path: "sh",
		Args: []string{"-c", `trap "" TERM; sleep 600 & sleep 600 & wait`}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Kill() })
	var kids []*proc.Record
	require.Eventually(t, func() bool { kids = children(r.PID); return len(kids) == 2 },
		time.Minute, 20*time.Millisecond, "sh did not start its two children")

	require.NoError(t, endTree(context.Background(), []*proc.Record{r}, syscall.SIGTERM, 500*time.Millisecond, nil))
	require.True(t, gone(r.PID, r.StartTicks))
	for _, k := range kids {
		require.True(t, gone(k.PID, k.StartTicks), "child %d still running", k.PID)
	}
}

// TestGoneZombieLeader: a process whose main thread has exited while
// another thread runs is a zombie to /proc/PID/stat (proc.Record.Alive
// says ended) but still in its cgroup; gone must say it is not, and
// endTree must still end it. This is how a Stop returned early while a
// member's process was still exiting.
func TestGoneZombieLeader(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		enginetest.RequireLab(t, "no python3 to make a process whose main thread exits first")
	}
	dir := t.TempDir()
	r, err := proc.Start(dir, proc.Spec{Name: "zleader", Path: py, Args: []string{"-c",
		"import threading, time, ctypes\n" +
			"threading.Thread(target=time.sleep, args=(600,)).start()\n" +
			"ctypes.CDLL(None).pthread_exit(None)\n"}})
	require.NoError(t, err)
	t.Cleanup(func() { signal(r, syscall.SIGKILL) })
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(r.PID), "stat"))
		return err == nil && strings.Contains(string(b), ") Z ")
	}, time.Minute, 20*time.Millisecond, "main thread did not exit")
	require.True(t, r.Alive(), "a zombie leader with a live thread is alive")
	require.False(t, gone(r.PID, r.StartTicks), "a zombie leader with a live thread is not gone")

	require.NoError(t, endTree(context.Background(), []*proc.Record{r}, syscall.SIGTERM, 5*time.Second, nil))
	require.True(t, gone(r.PID, r.StartTicks))
}
