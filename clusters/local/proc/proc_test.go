package proc

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStartStopByRecord(t *testing.T) {
	dir := t.TempDir()
	rec, err := Start(dir, Spec{Name: "sleeper", Path: "sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleeper.log")})
	require.NoError(t, err)
	require.True(t, rec.Alive())

	// A later chaosloop finds it again from disk.
	again, err := Load(dir, "sleeper")
	require.NoError(t, err)
	require.Equal(t, rec.PID, again.PID)
	require.NoError(t, again.Signal(syscall.SIGSTOP))
	require.NoError(t, again.Stop(context.Background(), 2*time.Second))
	require.False(t, rec.Alive())
	require.NoError(t, Forget(dir, "sleeper"))
	recs, err := List(dir)
	require.NoError(t, err)
	require.Empty(t, recs)
}

func TestReusedPIDIsNotSignalled(t *testing.T) {
	dir := t.TempDir()
	rec, err := Start(dir, Spec{Name: "s", Path: "sleep", Args: []string{"60"}})
	require.NoError(t, err)
	defer rec.Kill()
	// Pretend the record is of an older process that had this PID.
	stale := *rec
	stale.StartTicks++
	require.False(t, stale.Alive())
	require.ErrorIs(t, stale.Signal(syscall.SIGKILL), os.ErrProcessDone)
	require.True(t, rec.Alive())
}
