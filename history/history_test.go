package history

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An event that cannot be written is counted and reported, not dropped.
func TestLostEventsAreCounted(t *testing.T) {
	h, err := Create(filepath.Join(t.TempDir(), "history.jsonl"), time.Now())
	require.NoError(t, err)
	require.NoError(t, h.Add(Event{Type: PhaseChange, Phase: "warmup"}))
	require.NoError(t, h.Lost())
	require.NoError(t, h.Close())
	require.Error(t, h.Add(Event{Type: PhaseChange, Phase: "baseline"}))
	require.Error(t, h.Add(Event{Type: PhaseChange, Phase: "converge"}))
	require.ErrorContains(t, h.Lost(), "2 events not written")
}
