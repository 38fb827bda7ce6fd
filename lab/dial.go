package lab

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FailFastDialer returns a TCP dialer whose dials and idle connections
// fail within about silence when the path to the peer goes dark (a cut
// link, an isolated site, a powered-off node: packets vanish, no RST ever
// comes): a dial gives up after silence, and an idle peer silent to
// keepalive probes ends the connection. Wrap each connection in WatchPeer
// for the rest, a peer silent while data waits for it.
//
// The dial's own bound matters: franz-go applies its DialTimeout only to
// its default dialer, never to a custom one like this, and without a bound
// a dial to a dark broker waits out the kernel's SYN retries (measured:
// a handler's dial to the broker that lost power hung 69 s, until after
// the heal, holding its produce acks and stalling the pipeline).
func FailFastDialer(silence time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: silence,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     silence / 2,
			Interval: silence / 4,
			Count:    2,
		},
	}
}

// FailFastDial dials with FailFastDialer and watches each connection with
// WatchPeer.
func FailFastDial(silence time.Duration) DialFunc {
	d := FailFastDialer(silence)
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return WatchPeer(c, silence), nil
	}
}

// WatchPeer ends a TCP connection once its peer has been silent (no ACK
// of any kind) for silence while data waits for it: sent and
// unacknowledged, or unsent behind a closed window whose probe goes
// unanswered. Read and Write then fail with ETIMEDOUT ("connection timed
// out"), as the kernel would fail them, so clients reconnect elsewhere
// instead of waiting out the kernel's ~15 minutes of retransmissions.
//
// Not TCP_USER_TIMEOUT: since Linux 5.11 it also aborts a connection whose
// peer is alive but keeps its receive window closed that long, and a Kafka
// broker does exactly that while it works: it reads a connection's next
// request only after answering the one before, so pipelined produce
// requests fill its 100 KB receive buffer while an acks=all request waits
// for the followers. Measured: on a busy machine the load's producer lost
// its connection to a live broker with 556 requests queued on it, resent
// them all and lost the next connection 5 s later, 7,434 transfers ending
// unknown with no fault active. A closed window is answered (the peer
// ACKs the window probes), so here it keeps the connection; a dark path
// answers nothing. librdkafka, which Mojaloop's services use, sets no
// timeout of this kind at all.
func WatchPeer(c net.Conn, silence time.Duration) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	w := &watchedConn{TCPConn: tc, done: make(chan struct{})}
	go w.watch(silence)
	return w
}

type watchedConn struct {
	*net.TCPConn
	done   chan struct{}
	once   sync.Once
	silent atomic.Bool
}

func (w *watchedConn) watch(silence time.Duration) {
	t := time.NewTicker(max(silence/8, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			info, err := tcpInfo(w.TCPConn)
			if err != nil {
				return
			}
			if peerGone(info, silence) {
				w.silent.Store(true)
				w.Close()
				return
			}
		}
	}
}

func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		info *unix.TCPInfo
		gerr error
	)
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, gerr
}

// peerGone decides from a connection's TCP_INFO whether its peer is gone:
// no ACK of any kind (tcpi_last_ack_recv also counts the ACKs of keepalive
// and window probes) for silence while data waits for it.
func peerGone(info *unix.TCPInfo, silence time.Duration) bool {
	sinceAck := time.Duration(info.Last_ack_recv) * time.Millisecond
	switch {
	case info.Unacked > 0:
		// Data in flight: a live peer ACKs it within a round trip.
		return sinceAck >= silence
	case info.Notsent_bytes > 0:
		// Window closed. A busy peer may keep it closed for long and
		// answers the kernel's probes of it, but not every one: the
		// probes back off (0.2 s, 0.4 s, 0.8 s …), and a receiver answers
		// such out-of-window segments at most every 500 ms
		// (net.ipv4.tcp_invalid_ratelimit), so one probe in a row may go
		// unanswered, never two (the first two gaps already add up to
		// 0.6 s). Two unanswered probes say the peer is gone.
		return info.Probes >= 2 && sinceAck >= silence
	default:
		return false
	}
}

func (w *watchedConn) Read(b []byte) (int, error) {
	n, err := w.TCPConn.Read(b)
	return n, w.cause("read", err)
}

func (w *watchedConn) Write(b []byte) (int, error) {
	n, err := w.TCPConn.Write(b)
	return n, w.cause("write", err)
}

func (w *watchedConn) Close() error {
	w.once.Do(func() { close(w.done) })
	return w.TCPConn.Close()
}

// cause reports a connection the watchdog ended as the kernel reports a
// timed-out one.
func (w *watchedConn) cause(op string, err error) error {
	if err == nil || !w.silent.Load() {
		return err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: w.LocalAddr(), Addr: w.RemoteAddr(),
		Err: os.NewSyscallError(op, syscall.ETIMEDOUT)}
}
