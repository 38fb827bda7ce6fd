package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// The relay's tests use real TCP connections on the loopback: the relay
// (Relay) dials a server of the test's own, and the client side
// (dialThrough) runs the relay in-process, its standard streams pipes in
// place of a pod exec's.

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

// inProcess is a stream that runs Relay to address in this process, as
// the agent's pod runs it in an exec: its error on standard error. ended
// is closed once it returned.
func inProcess(address string, ended chan<- struct{}) stream {
	return func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
		defer close(ended)
		err := Relay(ctx, "tcp", address, stdin, stdout, time.Second, testSilence)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			return errors.New("command terminated with exit code 1")
		}
		return nil
	}
}

func dialInProcess(t *testing.T, address string) (net.Conn, <-chan struct{}) {
	t.Helper()
	ended := make(chan struct{})
	c, err := dialThrough(t.Context(), enginetest.ProcessLog(), inProcess(address, ended), "n1", address)
	require.NoError(t, err)
	return c, ended
}

func waitEnded(t *testing.T, ended <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Fatal(what)
	}
}

// TestDialThrough: the client side end to end over real sockets: the
// connection's addresses, bytes both ways, a read deadline, and EOF once
// the server closed (the relay then ended).
func TestDialThrough(t *testing.T) {
	addr := serve(t, echoBye)
	c, ended := dialInProcess(t, addr)
	defer c.Close()
	require.IsType(t, &net.TCPAddr{}, c.RemoteAddr())
	require.Equal(t, addr, c.RemoteAddr().String())
	require.Contains(t, c.LocalAddr().String(), "n1")

	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	back := make([]byte, 5)
	_, err = io.ReadFull(c, back)
	require.NoError(t, err)
	require.Equal(t, "hello", string(back))

	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = c.Read(back)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing to read: the deadline ends the read")
	require.NoError(t, c.SetReadDeadline(time.Time{}))

	big := payload(t, 1<<20)
	go func() { _, _ = c.Write(big) }()
	got := make([]byte, len(big))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(big, got), "the payload comes back intact")

	closing := serve(t, func(c net.Conn) { _, _ = io.WriteString(c, "bye\n") })
	c2, ended2 := dialInProcess(t, closing)
	defer c2.Close()
	rest, err := io.ReadAll(c2)
	require.NoError(t, err, "the server's close is the caller's EOF")
	require.Equal(t, "bye\n", string(rest))
	waitEnded(t, ended2, "the relay outlived its connection")

	select {
	case <-ended:
		t.Fatal("the first relay ended while its connection was open")
	default:
	}
}

// TestDialClose: closing the connection ends the relay and the server's
// connection.
func TestDialClose(t *testing.T) {
	serverEOF := make(chan struct{})
	addr := serve(t, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		close(serverEOF)
	})
	c, ended := dialInProcess(t, addr)
	require.NoError(t, c.Close())
	waitEnded(t, ended, "the relay outlived the connection's close")
	waitEnded(t, serverEOF, "the server's connection outlived the close")
	_, err := c.Write([]byte("x"))
	require.Error(t, err)
}

// TestDialFails: a relay that fails, says something else than its
// handshake, or says nothing, fails the dial, which names the node, the
// address and what the relay wrote on standard error.
func TestDialFails(t *testing.T) {
	log := enginetest.ProcessLog()
	addr := closedPort(t)
	_, err := dialThrough(t.Context(), log, inProcess(addr, make(chan struct{})), "n1", addr)
	require.ErrorContains(t, err, "relay from node n1 to "+addr+": the relay ended before its handshake: command terminated with exit code 1")
	require.ErrorContains(t, err, "Error: relay: dial tcp "+addr)

	other := func(ctx context.Context, _ io.Reader, stdout, stderr io.Writer) error {
		_, _ = io.WriteString(stderr, "unknown flag: --relay\n")
		_, _ = io.WriteString(stdout, "usage\n")
		<-ctx.Done() // ended by the dial
		return ctx.Err()
	}
	_, err = dialThrough(t.Context(), log, other, "n1", addr)
	require.ErrorContains(t, err, `the relay said "usa", not its handshake`)
	require.ErrorContains(t, err, "unknown flag: --relay")

	stopped := make(chan struct{})
	silent := func(ctx context.Context, _ io.Reader, _, _ io.Writer) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = dialThrough(ctx, log, silent, "n1", addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	waitEnded(t, stopped, "a relay whose dial failed runs on")

	_, err = (&Client{}).Dial(t.Context(), nil, "n1", "udp", addr)
	require.ErrorContains(t, err, "only TCP")
}
