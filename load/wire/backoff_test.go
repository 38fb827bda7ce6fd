package wire

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A broker whose dial failed is down: dials to it fail at once, without
// touching the network, until its backoff (100 ms, doubling to 10 s) has
// passed; a dial that works resets it; other brokers are not affected; a
// dial the caller cancelled says nothing about the broker.
func TestReconnectBackoff(t *testing.T) {
	now := time.Unix(0, 0)
	var calls int
	fail := errors.New("i/o timeout")
	up := map[string]bool{"b2:9092": true}
	d := reconnectBackoff(func(ctx context.Context, network, address string) (net.Conn, error) {
		calls++
		if up[address] {
			c, _ := net.Pipe()
			return c, nil
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: fail}
	}, func() time.Time { return now })
	ctx := context.Background()

	dial := func(addr string) error {
		c, err := d(ctx, "tcp", addr)
		if c != nil {
			c.Close()
		}
		return err
	}
	require.ErrorIs(t, dial("b1:9092"), fail)
	require.Equal(t, 1, calls)
	for _, backoff := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		now = now.Add(backoff - time.Millisecond)
		err := dial("b1:9092")
		require.ErrorContains(t, err, "broker down, reconnecting in 1ms")
		require.ErrorIs(t, err, fail, "the refusal names the failure")
		var ne *net.OpError
		require.ErrorAs(t, err, &ne)
		require.Equal(t, "dial", ne.Op, "franz-go treats it as a failed dial")
		require.False(t, ne.Timeout(), "not a timeout: franz-go refreshes metadata")
		require.NoError(t, dial("b2:9092"), "another broker is not held back")
		now = now.Add(time.Millisecond)
		calls = 0
		require.ErrorIs(t, dial("b1:9092"), fail, "after %s the broker is dialled again", backoff)
		require.Equal(t, 1, calls)
	}
	for range 10 {
		now = now.Add(ReconnectBackoffMax)
		require.Error(t, dial("b1:9092"))
	}
	now = now.Add(ReconnectBackoffMax - time.Millisecond)
	require.ErrorContains(t, dial("b1:9092"), "reconnecting in 1ms", "the backoff stops growing at the max")

	now = now.Add(time.Millisecond)
	up["b1:9092"] = true
	require.NoError(t, dial("b1:9092"))
	up["b1:9092"] = false
	require.ErrorIs(t, dial("b1:9092"), fail)
	now = now.Add(ReconnectBackoff)
	calls = 0
	require.ErrorIs(t, dial("b1:9092"), fail, "a dial that worked reset the backoff to its start")
	require.Equal(t, 1, calls)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	now = now.Add(ReconnectBackoffMax)
	_, err := d(cctx, "tcp", "b3:9092")
	require.Error(t, err)
	calls = 0
	require.ErrorIs(t, dial("b3:9092"), fail, "a cancelled dial does not mark the broker down")
	require.Equal(t, 1, calls)
}
