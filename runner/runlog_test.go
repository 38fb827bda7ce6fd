package runner

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunLogDropsPerRequestChatterOnly(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(newRunLogHandler(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("client", "kafka")
	log.Debug("wrote Produce v13", "broker", 1)
	log.Debug("read Fetch v18", "broker", 2)
	log.Debug("metadata refresh topic partition data changed", "topic", "p")
	log.Info("read this one: not debug")
	out := b.String()
	require.NotContains(t, out, "Produce v13")
	require.NotContains(t, out, "Fetch v18")
	require.Contains(t, out, "metadata refresh topic partition data changed")
	require.Contains(t, out, "client=kafka")
	require.Contains(t, out, "read this one")
}
