package agent

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"k8s.io/client-go/tools/remotecommand"
)

// stderrMax bounds what is kept of a relay session's standard error: its
// error message, never a flood.
const stderrMax = 4 << 10

// A stream runs a command in an agent pod with these standard streams
// until it exits: a pod exec (tests run the relay in-process instead).
type stream func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error

// execStream is ex's exec as a stream.
func execStream(ex remotecommand.Executor) stream {
	return func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
		return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
}

// relayConn is the caller's end of a relayed connection: a stream of its
// node's relay session (deadlines work), with the target as its remote
// address.
type relayConn struct {
	net.Conn
	local  net.Addr
	remote net.Addr
}

func (c *relayConn) LocalAddr() net.Addr  { return c.local }
func (c *relayConn) RemoteAddr() net.Addr { return c.remote }

// relayAddr names an end of a relayed connection that has no address here.
type relayAddr struct{ network, name string }

func (a relayAddr) Network() string { return a.network }
func (a relayAddr) String() string  { return a.name }

// remoteAddr is address as a TCP address, or as named for a host name:
// the node resolves it, not this process.
func remoteAddr(address string) net.Addr {
	if ap, err := netip.ParseAddrPort(address); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return relayAddr{"tcp", address}
}

// capped keeps the first max bytes written to it, safe to read while it
// is written.
type capped struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:n]...)
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSpace(string(c.buf))
}
