package bmc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
)

// cycleTimeout bounds one power cycle: sushy's fake driver takes up to
// 11 s a transition, a real server's BMC a few seconds.
const cycleTimeout = 2 * time.Minute

// randomPassword is a fresh password for a test's BMC, 15 bytes (IPMI 2.0
// allows 20), so that a leak check cannot pass by luck.
func randomPassword(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "pw-" + hex.EncodeToString(b)
}

// testLog logs to the test's output and to a buffer the test searches
// for leaked passwords.
func testLog(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(io.MultiWriter(t.Output(), &buf), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), &buf
}

// inventoryOf writes a one-node inventory (entry is its YAML flow mapping
// body after the node) and loads it.
func inventoryOf(t *testing.T, entry string) bmc.BMC {
	path := filepath.Join(t.TempDir(), "bmcs.yaml")
	require.NoError(t, os.WriteFile(path, []byte("bmcs:\n  - {node: node-1, "+entry+"}\n"), 0o600))
	inv, err := bmc.Load(path)
	require.NoError(t, err)
	return inv.BMCs[0]
}

// transition asks for a state and waits for it, returning the time from
// the request to the BMC first reporting the state.
func transition(t *testing.T, ctx context.Context, log *slog.Logger, c bmc.Controller, to bmc.State) time.Duration {
	start := time.Now()
	ask := c.PowerOn
	if to == bmc.Off {
		ask = c.PowerOff
	}
	require.NoError(t, ask(ctx))
	_, err := bmc.WaitFor(ctx, log, c, to)
	require.NoError(t, err)
	took := time.Since(start)
	// Idempotent: asking again for the state the server is in succeeds
	// and leaves it there.
	require.NoError(t, ask(ctx))
	s, err := c.PowerState(ctx)
	require.NoError(t, err)
	require.Equal(t, to, s)
	return took
}

// powerCycle powers c off and on again (on first if it is off), and logs
// the measured transition times.
func powerCycle(t *testing.T, log *slog.Logger, c bmc.Controller) (off, on time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), cycleTimeout)
	defer cancel()
	s, err := c.PowerState(ctx)
	require.NoError(t, err)
	if s != bmc.On {
		transition(t, ctx, log, c, bmc.On)
	}
	off = transition(t, ctx, log, c, bmc.Off)
	on = transition(t, ctx, log, c, bmc.On)
	t.Logf("measured: power-off %s, power-on %s (request to state reported)", off.Round(time.Millisecond), on.Round(time.Millisecond))
	return off, on
}
