package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The relay's tests use real TCP connections on the loopback: the relay
// (Relay) dials a server of the test's own.

const testSilence = 4 * time.Second

// serve listens on the loopback and hands each connection to handle; it
// returns the listener's address.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// echoBye echoes what it reads and, once the client half-closed, says
// "bye\n" and closes: a reply after the client's end of input.
func echoBye(c net.Conn) {
	if _, err := io.Copy(c, c); err == nil {
		_, _ = io.WriteString(c, "bye\n")
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func payload(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// startRelayPipes runs Relay to address with pipes for its streams; the
// channel has its result.
func startRelayPipes(ctx context.Context, address string) (*io.PipeWriter, *io.PipeReader, <-chan error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Relay(ctx, "tcp", address, inR, outW, time.Second, testSilence)
		outW.Close()
		inR.Close()
		done <- err
	}()
	return inW, outR, done
}

// TestRelay: the handshake, bytes both ways at once (an echo), a payload
// of megabytes intact, and the server's reply after the client's input
// ended (a half-close, not a close).
func TestRelay(t *testing.T) {
	in, out, done := startRelayPipes(t.Context(), serve(t, echoBye))
	hs := make([]byte, 3)
	_, err := io.ReadFull(out, hs)
	require.NoError(t, err)
	require.Equal(t, "ok\n", string(hs))

	_, err = io.WriteString(in, "hello")
	require.NoError(t, err)
	back := make([]byte, 5)
	_, err = io.ReadFull(out, back)
	require.NoError(t, err)
	require.Equal(t, "hello", string(back), "bytes go through before the input ends")

	big := payload(t, 4<<20)
	go func() {
		_, _ = in.Write(big)
		in.Close()
	}()
	got, err := io.ReadAll(out)
	require.NoError(t, err)
	require.True(t, bytes.Equal(append(big, "bye\n"...), got), "%d bytes back of %d and the reply", len(got), len(big)+4)
	require.NoError(t, <-done, "the server closed: a normal end")
}

// TestRelayRefused: a dial that fails writes no handshake.
func TestRelayRefused(t *testing.T) {
	var out bytes.Buffer
	err := Relay(t.Context(), "tcp", closedPort(t), strings.NewReader(""), &out, time.Second, testSilence)
	require.ErrorContains(t, err, "refused")
	require.Empty(t, out.String())
}

// TestRelayCancel: the context ends a relay whose peer and input are
// silent.
func TestRelayCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	in, out, done := startRelayPipes(ctx, serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }))
	defer in.Close()
	go func() { _, _ = io.Copy(io.Discard, out) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("the relay outlived its context")
	}
}
