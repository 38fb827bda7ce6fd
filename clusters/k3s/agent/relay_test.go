package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// inProcess are relay sessions served in this process (ServeRelays), as
// the agents' pods serve them in an exec; opened counts the sessions.
func inProcess(opened *atomic.Int32) *Relays {
	return &Relays{open: func(context.Context, string) (stream, error) {
		opened.Add(1)
		return func(ctx context.Context, stdin io.Reader, stdout, _ io.Writer) error {
			return ServeRelays(ctx, stdin, stdout, time.Second, testSilence)
		}, nil
	}}
}

// TestRelays: the client side end to end over real sockets: the
// connection's addresses, bytes both ways, a read deadline, EOF once the
// server closed; every connection through a node shares its one session.
func TestRelays(t *testing.T) {
	var opened atomic.Int32
	r := inProcess(&opened)
	defer r.Close()
	addr := serve(t, echoBye)
	c, err := r.Dial(t.Context(), "n1", "tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.IsType(t, &net.TCPAddr{}, c.RemoteAddr())
	require.Equal(t, addr, c.RemoteAddr().String())
	require.Contains(t, c.LocalAddr().String(), "n1")

	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	back := make([]byte, 5)
	_, err = io.ReadFull(c, back)
	require.NoError(t, err)
	require.Equal(t, "hello", string(back))

	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = c.Read(back)
	require.Error(t, err, "nothing to read: the deadline ends the read")
	require.True(t, os.IsTimeout(err) || errors.Is(err, os.ErrDeadlineExceeded), "%v", err)
	require.NoError(t, c.SetReadDeadline(time.Time{}))

	big := payload(t, 1<<20)
	go func() { _, _ = c.Write(big) }()
	got := make([]byte, len(big))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(big, got), "the payload comes back intact")

	closing := serve(t, func(c net.Conn) { _, _ = io.WriteString(c, "bye\n") })
	c2, err := r.Dial(t.Context(), "n1", "tcp", closing)
	require.NoError(t, err)
	defer c2.Close()
	rest, err := io.ReadAll(c2)
	require.NoError(t, err, "the server's close is the caller's EOF")
	require.Equal(t, "bye\n", string(rest))
	require.Equal(t, int32(1), opened.Load(), "one session per node")

	c3, err := r.Dial(t.Context(), "n2", "tcp", addr)
	require.NoError(t, err)
	c3.Close()
	require.Equal(t, int32(2), opened.Load(), "a session of its own for another node")
}

// TestRelaysClose: closing a connection ends the server's; closing the
// relays ends every connection.
func TestRelaysClose(t *testing.T) {
	var opened atomic.Int32
	r := inProcess(&opened)
	serverEOF := make(chan struct{})
	addr := serve(t, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		close(serverEOF)
	})
	c, err := r.Dial(t.Context(), "n1", "tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	waitEnded(t, serverEOF, "the server's connection outlived the close")

	echo := serve(t, echoBye)
	c2, err := r.Dial(t.Context(), "n1", "tcp", echo)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	_, err = io.ReadAll(c2)
	_, werr := c2.Write([]byte("x"))
	require.True(t, err != nil || werr != nil, "the relays' close ends their connections")
}

func waitEnded(t *testing.T, ended <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Fatal(what)
	}
}

// TestRelaysFail: a dial the agent cannot make fails and names the node,
// the address and the agent's error; a session whose exec ends says what
// it wrote on standard error; a silent agent is bounded by the dial's
// context.
func TestRelaysFail(t *testing.T) {
	var opened atomic.Int32
	r := inProcess(&opened)
	defer r.Close()
	addr := closedPort(t)
	_, err := r.Dial(t.Context(), "n1", "tcp", addr)
	require.ErrorContains(t, err, "agent: relay from node n1 to "+addr+": relay: dial tcp "+addr)

	old := &Relays{open: func(context.Context, string) (stream, error) {
		return func(_ context.Context, _ io.Reader, _, stderr io.Writer) error {
			_, _ = io.WriteString(stderr, "unknown flag: --relay-mux\n")
			return errors.New("command terminated with exit code 1")
		}, nil
	}}
	defer old.Close()
	_, err = old.Dial(t.Context(), "n1", "tcp", addr)
	require.ErrorContains(t, err, "agent: relay from node n1 to "+addr)
	require.ErrorContains(t, err, "unknown flag: --relay-mux")

	silent := &Relays{open: func(context.Context, string) (stream, error) {
		return func(ctx context.Context, _ io.Reader, _, _ io.Writer) error {
			<-ctx.Done()
			return ctx.Err()
		}, nil
	}}
	defer silent.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = silent.Dial(ctx, "n1", "tcp", addr)
	require.Error(t, err)

	_, err = r.Dial(t.Context(), "n1", "udp", addr)
	require.ErrorContains(t, err, "only TCP")
}

// TestRelaysResetAfterHandshake: a connection that fails after the
// handshake (its peer resets it) ends the caller's: nothing but the
// peer's bytes reaches the caller (an error line there was read by the
// load's Kafka client as a response size of 1.7 GB).
func TestRelaysResetAfterHandshake(t *testing.T) {
	var opened atomic.Int32
	r := inProcess(&opened)
	defer r.Close()
	addr := serve(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "data")
		time.Sleep(100 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0) // close with RST
		c.Close()
	})
	c, err := r.Dial(t.Context(), "n1", "tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	got, _ := io.ReadAll(c)
	require.Equal(t, "data", string(got))
}

// TestRelaysNodesApart: a node whose session cannot be opened (its open
// hangs, then fails, as when the node is cut off the API server) holds up
// the dials through that node only, and its failure answers the next
// dials through it for openHoldoff, without another open: under one lock
// for every node, a cut-off site held up every dial of the load.
func TestRelaysNodesApart(t *testing.T) {
	var opened, darkOpens atomic.Int32
	inner := inProcess(&opened)
	release := make(chan struct{})
	r := &Relays{open: func(ctx context.Context, node string) (stream, error) {
		if node == "dark" {
			darkOpens.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("no route to the node's kubelet")
		}
		return inner.open(ctx, node)
	}}
	defer r.Close()
	addr := serve(t, echoBye)
	darkErr := make(chan error, 1)
	go func() {
		_, err := r.Dial(t.Context(), "dark", "tcp", addr)
		darkErr <- err
	}()
	require.Eventually(t, func() bool { return darkOpens.Load() == 1 }, 2*time.Second, time.Millisecond)

	lit := make(chan error, 1)
	go func() {
		c, err := r.Dial(t.Context(), "n1", "tcp", addr)
		if err == nil {
			c.Close()
		}
		lit <- err
	}()
	select {
	case err := <-lit:
		require.NoError(t, err, "a dial through another node")
	case <-time.After(2 * time.Second):
		close(release)
		t.Fatal("a dial through n1 waited on the dark node's open")
	}
	close(release)
	require.ErrorContains(t, <-darkErr, "agent: relay from node dark to "+addr+": no route to the node's kubelet")

	_, err := r.Dial(t.Context(), "dark", "tcp", addr)
	require.ErrorContains(t, err, "no route to the node's kubelet")
	require.ErrorContains(t, err, "next try in")
	require.Equal(t, int32(1), darkOpens.Load(), "the failed open answered; no second one")
}
