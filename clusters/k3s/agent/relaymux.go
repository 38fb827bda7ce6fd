package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"k8s.io/client-go/rest"
)

// One exec per connection cost an API request to find the agent's pod,
// an exec through the API server and the kubelet, and a chaosloop process
// start: over a second on a busy machine, past the load's Redis client's
// 1 s dial timeout, and the retries that followed ran into client-go's
// rate limiter, which starved the probes too (measured on the kind test
// cluster: no transfer acknowledged). So each node gets one long-lived
// exec (`chaosloop internal agent --relay-mux`) carrying a yamux session,
// and each connection is a stream of it: a dial costs one round trip.

// muxConfig: keepalives end a session whose exec went dark (the node cut
// off the API server) within a few seconds, so its connections fail and
// the client's next dial goes through another node, as a load balancer's
// health check would.
func muxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.KeepAliveInterval = 2 * time.Second
	c.ConnectionWriteTimeout = 4 * time.Second
	c.StreamOpenTimeout = 5 * time.Second
	c.LogOutput = io.Discard
	return c
}

// stdio is a command's standard streams as one connection.
type stdio struct {
	io.Reader
	io.Writer
	close func() error
}

func (s stdio) Close() error { return s.close() }

// ServeRelays is the agent's end of the relay session (`--relay-mux`):
// each stream the client opens names an address on its first line, is
// answered "ok\n" once Relay dialed it from this network namespace (or
// "error: …\n"), and then carries the connection. It returns when in ends
// or ctx is done.
func ServeRelays(ctx context.Context, in io.Reader, out io.Writer, dialTimeout, silence time.Duration) error {
	sess, err := yamux.Server(stdio{Reader: in, Writer: out, close: func() error { return nil }}, muxConfig())
	if err != nil {
		return err
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil || sess.IsClosed() {
				return nil
			}
			return err
		}
		go serveRelay(ctx, st, dialTimeout, silence)
	}
}

// serveRelay relays one stream to the address on its first line.
func serveRelay(ctx context.Context, st *yamux.Stream, dialTimeout, silence time.Duration) {
	defer st.Close()
	address, err := readLine(st)
	if err != nil {
		return
	}
	out := &written{Writer: st}
	err = Relay(ctx, "tcp", address, st, out, dialTimeout, silence)
	if err != nil && !out.any {
		// a dial that failed wrote no handshake: say why instead (never
		// after it: the bytes that follow the handshake are the peer's)
		_, _ = io.WriteString(st, "error: "+strings.ReplaceAll(err.Error(), "\n", " ")+"\n")
	}
}

// written says whether anything was written through it.
type written struct {
	io.Writer
	any bool
}

func (w *written) Write(p []byte) (int, error) {
	w.any = true
	return w.Writer.Write(p)
}

// readLine reads up to '\n' one byte at a time: what follows is the
// connection's, not a buffer's.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for b.Len() < 1024 {
		if _, err := io.ReadFull(r, one); err != nil {
			return "", err
		}
		if one[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(one[0])
	}
	return "", errors.New("line too long")
}

// Relays dials through the scenario's agents: one relay session per node,
// opened on first use and again once it ended.
type Relays struct {
	// open starts node's relay session: the exec of `--relay-mux` in its
	// agent (NewRelays), or in-process in tests.
	open func(ctx context.Context, node string) (stream, error)

	mu     sync.Mutex
	nodes  map[string]*nodeRelay
	closed bool
}

// nodeRelay is one node's session slot. Its own lock serializes opening
// the node's session, so a node whose open hangs (its kubelet cut off the
// API server, the API server slow to list the agents) holds up the dials
// through that node only: under one lock for every node, a dial through
// site dc3's cut-off nodes held up every other, and the load fell to
// 1.7 % of its baseline for the whole isolation (quickstart on kind,
// --on k3s).
type nodeRelay struct {
	mu   sync.Mutex
	sess *relaySession
	// failed is the last failed open and when: dials within
	// openHoldoff of it fail at once with its error rather than list
	// and exec again, a storm of API requests while a node is dark.
	failed   error
	failedAt time.Time
}

var errClosed = errors.New("relays closed")

// openHoldoff is how long a node's failed session open answers for it.
const openHoldoff = 2 * time.Second

// relaySession is a node's session and its exec.
type relaySession struct {
	*yamux.Session
	cancel context.CancelFunc
	ended  chan struct{} // closed once the exec returned, err set
	err    error
}

// cause is why the session ended, nil while its exec runs.
func (s *relaySession) cause() error {
	select {
	case <-s.ended:
		return s.err
	default:
		return nil
	}
}

// NewRelays dials through c's agents, their execs made with cfg.
func (c *Client) NewRelays(cfg *rest.Config) *Relays {
	return &Relays{open: func(ctx context.Context, node string) (stream, error) {
		ex, _, err := c.executor(ctx, cfg, node, true, []string{"chaosloop", "internal", "agent", "--relay-mux"})
		if err != nil {
			return nil, err
		}
		return execStream(ex), nil
	}}
}

// Dial connects to address as a client on node would: the node's agent
// relays the connection, so it leaves from the node's network namespace
// and the node's isolate rules apply to it. ctx bounds the dial; the
// connection lasts until closed, until its peer closes it, or until the
// node's session ends (the node cut off the API server). Its deadlines
// work, as drivers need.
func (r *Relays) Dial(ctx context.Context, node, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("agent: relay from node %s to %s: only TCP is relayed, not %q", node, address, network)
	}
	sess, err := r.session(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("agent: relay from node %s to %s: %w", node, address, err)
	}
	c, err := open(ctx, sess, address)
	if err != nil {
		if cause := sess.cause(); cause != nil {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return nil, fmt.Errorf("agent: relay from node %s to %s: %w", node, address, err)
	}
	return &relayConn{Conn: c, local: relayAddr{"relay", "node/" + node}, remote: remoteAddr(address)}, nil
}

// open opens a stream of sess to address and waits for the agent's
// answer, within ctx.
func open(ctx context.Context, sess *relaySession, address string) (net.Conn, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	reply, err := func() (string, error) {
		if _, err := io.WriteString(st, address+"\n"); err != nil {
			return "", err
		}
		return readLine(st)
	}()
	if !stop() && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil && reply != strings.TrimSuffix(relayOK, "\n") {
		err = remoteError(strings.TrimPrefix(reply, "error: "))
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	_ = st.SetDeadline(time.Time{})
	return st, nil
}

// relayError is the agent's account of a dial that failed on its node.
// One that ran out of time there is a timeout (net.Error), as the same
// dial made from chaosloop's machine would be: an engine's probe then
// counts the member as timed out, no evidence, instead of down (the
// quickstart on k3s saw one false "bulk-db read-only (2 up)" sample while
// every Patroni member served, on a saturated 2-core machine).
type relayError struct {
	msg     string
	timeout bool
}

func (e *relayError) Error() string   { return e.msg }
func (e *relayError) Timeout() bool   { return e.timeout }
func (e *relayError) Temporary() bool { return e.timeout }

// remoteError reads the agent's error line: Go's dial timeouts read
// "i/o timeout", the kernel's "connection timed out".
func remoteError(msg string) error {
	timeout := strings.HasSuffix(msg, "i/o timeout") || strings.HasSuffix(msg, "connection timed out") ||
		strings.HasSuffix(msg, context.DeadlineExceeded.Error())
	return &relayError{msg: msg, timeout: timeout}
}

var _ net.Error = (*relayError)(nil)

// session is node's relay session, opened when there is none alive.
func (r *Relays) session(ctx context.Context, node string) (*relaySession, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	if r.nodes == nil {
		r.nodes = map[string]*nodeRelay{}
	}
	n := r.nodes[node]
	if n == nil {
		n = &nodeRelay{}
		r.nodes[node] = n
	}
	r.mu.Unlock()

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess != nil && !n.sess.IsClosed() {
		return n.sess, nil
	} else if n.sess != nil {
		n.sess.cancel()
		n.sess = nil
	}
	if since := time.Since(n.failedAt); n.failed != nil && since < openHoldoff {
		return nil, fmt.Errorf("%w (opening its session failed %s ago; next try in %s)",
			n.failed, since.Round(time.Millisecond), (openHoldoff - since).Round(time.Millisecond))
	}
	s, err := r.start(ctx, node)
	if err != nil {
		n.failed, n.failedAt = err, time.Now()
		return nil, err
	}
	n.failed = nil
	// a Close that ran meanwhile did not see this session
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		s.Close()
		s.cancel()
		return nil, errClosed
	}
	n.sess = s
	return s, nil
}

// start opens node's session: the exec and the yamux client over it.
func (r *Relays) start(ctx context.Context, node string) (*relaySession, error) {
	run, err := r.open(ctx, node)
	if err != nil {
		return nil, err
	}
	// the session outlives the dial that opened it
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	rs := &relaySession{cancel: cancel, ended: make(chan struct{})}
	go func() {
		errOut := &capped{max: stderrMax}
		err := run(sctx, inR, outW, errOut)
		if err == nil {
			err = errors.New("its exec ended")
		}
		if msg := errOut.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		rs.err = fmt.Errorf("relay session ended: %w", err)
		close(rs.ended)
		inR.CloseWithError(rs.err)
		outW.CloseWithError(rs.err)
	}()
	sess, err := yamux.Client(stdio{Reader: outR, Writer: inW, close: func() error {
		cancel()
		inW.Close()
		return outR.Close()
	}}, muxConfig())
	if err != nil {
		cancel()
		return nil, err
	}
	rs.Session = sess
	return rs, nil
}

// Close ends every session, and with them their connections.
func (r *Relays) Close() error {
	r.mu.Lock()
	nodes := r.nodes
	r.nodes, r.closed = nil, true
	r.mu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		if n.sess != nil {
			n.sess.Close()
			n.sess.cancel()
		}
		n.mu.Unlock()
	}
	return nil
}
