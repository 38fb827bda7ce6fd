package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// relayWait bounds a dial's wait for the relay's handshake: the exec's
// start through the API server and the relay's own dial (2 s by default).
const relayWait = 15 * time.Second

// stderrMax bounds what a dial keeps of a relay's standard error: its
// error message, never a flood.
const stderrMax = 4 << 10

// A stream runs a command in an agent pod with these standard streams
// until it exits: a pod exec (tests run Relay in-process instead).
type stream func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error

// Dial connects to address as a client on node would: the scenario's
// agent on node relays the connection (Relay, run by a pod exec with cfg),
// so it leaves from the node's network namespace and the node's isolate
// rules apply to it. network is tcp (tcp4 and tcp6 too: the relay dials
// tcp). ctx bounds the dial only; the connection lasts until closed or
// until the relay's connection ends (its reads then end with EOF). Its
// deadlines work, as drivers need.
func (c *Client) Dial(ctx context.Context, cfg *rest.Config, node, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("agent: relay from node %s to %s: only TCP is relayed, not %q", node, address, network)
	}
	argv := []string{"chaosloop", "internal", "agent", "--relay", address}
	ex, pod, err := c.executor(ctx, cfg, node, true, argv)
	if err != nil {
		return nil, fmt.Errorf("agent: relay from node %s to %s: %w", node, address, err)
	}
	run := func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
		return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
	return dialThrough(ctx, c.log().With("node", node, "agent", pod), run, node, address)
}

// dialThrough starts run, a relay to address on node, waits for its
// handshake and returns the connection it carries.
func dialThrough(ctx context.Context, log *slog.Logger, run stream, node, address string) (net.Conn, error) {
	s := startRelay(ctx, run)
	if err := s.handshake(ctx, relayWait); err != nil {
		return nil, fmt.Errorf("agent: relay from node %s to %s: %w", node, address, err)
	}
	local, remote := net.Pipe()
	go func() {
		// the caller's bytes to the relay; the caller's close is the
		// relay's end of input
		_, _ = io.Copy(s.stdin, remote)
		s.stdin.Close()
	}()
	go func() {
		// the relay's bytes to the caller, who reads EOF once the relay ends
		_, _ = io.Copy(remote, s.stdout)
		remote.Close()
		s.stdout.Close() // a relay still writing fails rather than blocks
		<-s.ended
		if s.err != nil {
			log.Debug("agent: relay ended", "address", address, "err", s.err, "stderr", s.stderr.String())
		}
	}()
	return &relayConn{Conn: local, local: relayAddr{"relay", "node/" + node}, remote: remoteAddr(address), stop: s.stop}, nil
}

// relayStream is a running relay: its standard input and output as pipes,
// what it wrote on standard error, and how it ended.
type relayStream struct {
	stdin  *io.PipeWriter
	stdout *io.PipeReader
	stderr *capped
	cancel context.CancelFunc
	ended  chan struct{} // closed once run returned, with err set
	err    error
}

// startRelay runs run in the background, under a context of its own: the
// dial's context ends when the dial returns, the connection does not.
func startRelay(ctx context.Context, run stream) *relayStream {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &relayStream{stdin: inW, stdout: outR, stderr: &capped{max: stderrMax}, cancel: cancel, ended: make(chan struct{})}
	go func() {
		s.err = run(sctx, inR, outW, s.stderr)
		cancel()
		close(s.ended) // before the pipes close: a reader of EOF finds err
		inR.CloseWithError(errors.New("relay ended"))
		outW.Close()
	}()
	return s
}

// stop ends the relay: its input first, then the exec.
func (s *relayStream) stop() {
	s.stdin.Close()
	s.cancel()
}

// handshake reads the relay's "ok\n", within wait; a relay that never says
// it, or says anything else, is stopped.
func (s *relayStream) handshake(ctx context.Context, wait time.Duration) error {
	got := make(chan error, 1)
	go func() {
		b := make([]byte, len(relayOK))
		_, err := io.ReadFull(s.stdout, b)
		if err == nil && string(b) != relayOK {
			err = fmt.Errorf("the relay said %q, not its handshake", b)
		}
		got <- err
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case err = <-got:
		if err == nil {
			return nil
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("no handshake from the relay within %s", wait)
	}
	s.stop()
	return s.failure(err)
}

// failure is err with what the relay said: a relay that ended before its
// handshake (EOF) failed, and its exec's error and standard error say why.
func (s *relayStream) failure(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("the relay ended before its handshake")
		if s.err != nil {
			err = fmt.Errorf("%w: %w", err, s.err)
		}
	}
	if msg := s.stderr.String(); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// relayConn is the caller's end of a relayed connection.
type relayConn struct {
	net.Conn // the caller's end of a net.Pipe: deadlines work
	local    net.Addr
	remote   net.Addr
	once     sync.Once
	stop     func()
}

func (c *relayConn) LocalAddr() net.Addr  { return c.local }
func (c *relayConn) RemoteAddr() net.Addr { return c.remote }

// Close ends the relay too.
func (c *relayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.stop)
	return err
}

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
