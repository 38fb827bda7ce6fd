package local

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
)

// TestStageWorkerNamesTheCopies: a backend's worker runs from copies of its
// binary and files in the member's directory, and its arguments name them.
func TestStageWorkerNamesTheCopies(t *testing.T) {
	src := t.TempDir()
	bin := filepath.Join(src, "chaosloop")
	cfg := filepath.Join(src, "handler.json")
	require.NoError(t, os.WriteFile(bin, []byte("binary"), 0o755))
	require.NoError(t, os.WriteFile(cfg, []byte("{}"), 0o600))
	w := lab.Worker{Path: bin, Args: []string{"internal", "handler", "--config", cfg}, MemberFlag: "--member", Files: []string{cfg}}
	dir := filepath.Join(t.TempDir(), "data", "n1", "handlers", "worker")

	for range 2 { // staging again (a restart) replaces the copies
		got, err := stageWorker(w, dir)
		require.NoError(t, err)
		require.Equal(t, filepath.Join(dir, "chaosloop"), got.Path)
		require.Equal(t, []string{"internal", "handler", "--config", filepath.Join(dir, "handler.json")}, got.Args)
		require.Equal(t, "--member", got.MemberFlag)
		require.Empty(t, got.Files)
		fi, err := os.Stat(got.Path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "still executable")
		b, err := os.ReadFile(filepath.Join(dir, "handler.json"))
		require.NoError(t, err)
		require.Equal(t, "{}", string(b))
	}
	require.Equal(t, []string{"internal", "handler", "--config", cfg}, w.Args, "the worker itself is unchanged")
}

func TestStageWorkerMissingFile(t *testing.T) {
	_, err := stageWorker(lab.Worker{Path: filepath.Join(t.TempDir(), "nothing")}, t.TempDir())
	require.ErrorIs(t, err, os.ErrNotExist)
}
