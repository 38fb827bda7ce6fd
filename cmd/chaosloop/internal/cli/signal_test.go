package cli_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// waitSignal returns the signal that cancelled ctx within a second.
func waitSignal(t *testing.T, ctx context.Context) os.Signal {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("not cancelled within a second")
	}
	se := cli.SignalOf(ctx)
	require.NotNil(t, se, "cause: %v", context.Cause(ctx))
	return se.Signal
}

// supervised is NotifyContext as a supervised child runs it: the signals
// its parent forwards are written to the returned pipe.
func supervised(t *testing.T) (context.Context, *os.File) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	ctx, stop := cli.NotifyContext(context.Background(), r)
	t.Cleanup(func() {
		stop()
		w.Close()
	})
	return ctx, w
}

// TestForwardedSignal: a signal the supervising parent forwards cancels
// the context like one received directly.
func TestForwardedSignal(t *testing.T) {
	ctx, parent := supervised(t)
	_, err := parent.Write([]byte{byte(syscall.SIGTERM)})
	require.NoError(t, err)
	require.Equal(t, syscall.SIGTERM, waitSignal(t, ctx))
}

// TestCtrlCCountsOnce: a Ctrl-C reaches chaosloop and its supervising
// parent, which forwards it: that is one signal, not the second that
// ends chaosloop at once (which would end this test's process).
func TestCtrlCCountsOnce(t *testing.T) {
	ctx, parent := supervised(t)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	require.Equal(t, os.Interrupt, waitSignal(t, ctx))
	_, err := parent.Write([]byte{byte(syscall.SIGINT)})
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond) // a second signal would end the process here
}
