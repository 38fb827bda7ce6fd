// Package netdelay delays and drops packets in userspace, for kernels
// without sch_netem. iptables rules send the packets of a link or node to an
// NFQUEUE (with --queue-bypass); a Delayer bound to that queue holds each
// packet for Delay ± Jitter, then tells the kernel to accept it, or drops it
// with probability Loss.
//
// Semantics, chosen to match netem's defaults:
//   - Jitter is uniform: each packet's delay is drawn from
//     [Delay-Jitter, Delay+Jitter], clamped at 0.
//   - With jitter, packets are reordered (each leaves when its own delay
//     ends), as with netem without a rate. Packets with equal delays keep
//     their order.
//   - Loss is independent per packet (no correlation).
//
// Randomness comes from a math/rand/v2 PCG source seeded from Config.Seed:
// the n-th packet the delayer receives always gets the same loss decision
// and delay for the same seed (which packet is n-th depends on traffic).
//
// A Delayer delays one direction: the packets its rules queue. Delaying a
// link's egress on both ends by X/2 adds X to its round-trip time; the
// rules (see Rule) decide what is a link or a node. IPv4 only (iptables).
//
// The queue is configured fail-open: when it is full or the delayer falls
// behind, the kernel lets packets through undelayed instead of dropping
// them; with --queue-bypass the same holds when no delayer is bound.
package netdelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// DefaultMaxLen is the queue length used when Config.MaxLen is 0: enough
// for 20 ms of delay at ~800k packets/s. Held packets keep their buffers,
// so it also bounds the memory a delayer pins in the kernel.
const DefaultMaxLen = 16384

// Config is one delayer's behaviour.
type Config struct {
	// Queue is the NFQUEUE number the iptables rules send packets to
	// (queue numbers are per network namespace).
	Queue uint16
	// Delay is added to every accepted packet; Jitter widens it uniformly
	// to [Delay-Jitter, Delay+Jitter].
	Delay, Jitter time.Duration
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// Seed seeds the random source of loss and jitter.
	Seed uint64
	// MaxLen is the kernel queue length (0 = DefaultMaxLen). Packets
	// beyond it pass undelayed (fail-open).
	MaxLen uint32
}

func (c Config) validate() error {
	switch {
	case c.Delay < 0:
		return fmt.Errorf("netdelay: negative delay %s", c.Delay)
	case c.Jitter < 0:
		return fmt.Errorf("netdelay: negative jitter %s", c.Jitter)
	case !(c.Loss >= 0 && c.Loss <= 1):
		return fmt.Errorf("netdelay: loss %v not in [0,1]", c.Loss)
	}
	return nil
}

// Stats counts what a Delayer did.
type Stats struct {
	// Received packets, Accepted after their delay, Dropped as loss.
	Received, Accepted, Dropped uint64
	// Errors the kernel reported for our verdicts (e.g. a packet flushed
	// because its device went away).
	Errors uint64
	// Overruns: times our socket buffer overflowed; the kernel let those
	// packets pass undelayed (fail-open).
	Overruns uint64
	// Pending packets held right now.
	Pending int
}

// Delayer holds the packets of one NFQUEUE. Create it with Open or
// OpenInNetNS, then call Serve once (or Close, if it is not to serve).
type Delayer struct {
	log   *slog.Logger
	cfg   Config
	conn  *netlink.Conn
	raw   syscall.RawConn
	epoch time.Time

	mu      sync.Mutex // guards sched and rng
	sched   schedule
	rng     *rand.Rand
	reqSeq  uint32
	wake    chan struct{}
	release sync.Once
	relErr  error

	received, accepted, dropped, errs, overruns atomic.Uint64
}

// Run binds cfg.Queue in the calling goroutine's network namespace and
// delays packets until ctx ends, then releases the queue.
func Run(ctx context.Context, log *slog.Logger, cfg Config) error {
	d, err := Open(ctx, log, cfg)
	if err != nil {
		return err
	}
	return d.Serve(ctx)
}

// RunInNetNS is Run for the named network namespace (/var/run/netns/<name>).
func RunInNetNS(ctx context.Context, log *slog.Logger, netns string, cfg Config) error {
	d, err := OpenInNetNS(ctx, log, netns, cfg)
	if err != nil {
		return err
	}
	return d.Serve(ctx)
}

// Open binds cfg.Queue in the current network namespace. Packets start to
// be held as soon as Open returns; call Serve to release them on time.
func Open(ctx context.Context, log *slog.Logger, cfg Config) (*Delayer, error) {
	return open(ctx, log, cfg, 0)
}

// OpenInNetNS binds cfg.Queue in the named network namespace
// (/var/run/netns/<name>). The netlink socket is created inside that
// namespace by a goroutine locked to its OS thread, which setns()es there
// and back (github.com/mdlayher/socket does this); the socket stays bound
// to the namespace it was created in, so the rest runs on any thread.
func OpenInNetNS(ctx context.Context, log *slog.Logger, netns string, cfg Config) (*Delayer, error) {
	f, err := os.Open(filepath.Join("/var/run/netns", netns))
	if err != nil {
		return nil, fmt.Errorf("netdelay: network namespace %q: %w", netns, err)
	}
	defer f.Close()
	return open(ctx, log.With("netns", netns), cfg, int(f.Fd()))
}

func open(ctx context.Context, log *slog.Logger, cfg Config, nsFD int) (*Delayer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("netdelay: netlink socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("netdelay: netlink socket: %w", err)
	}
	d := &Delayer{
		log:   log.With("queue", cfg.Queue),
		cfg:   cfg,
		conn:  conn,
		raw:   raw,
		epoch: time.Now(),
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		wake:  make(chan struct{}, 1),
	}
	// A big receive buffer absorbs bursts; when it overflows the kernel
	// fails open, which undercounts delay rather than dropping traffic.
	if err := d.setsockopt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		d.log.Warn("netdelay: cannot enlarge receive buffer", "err", err)
	}
	// The kernel answers a bind at once; the deadline only guards
	// against waiting forever on a broken socket.
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetReadDeadline(deadline)
	// Bind and configure in one request: every packet queued after the
	// bind already sees metadata-only copying and fail-open.
	err = d.request(
		cmdAttr(cmdBind),
		paramsAttr(0, copyMeta),
		u32Attr(cfgQueueMax, cfg.MaxLen),
		u32Attr(cfgMask, flagFailOpen|flagGSO),
		u32Attr(cfgFlags, flagFailOpen|flagGSO),
	)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("netdelay: bind queue %d: already bound by another socket: %w", cfg.Queue, err)
		}
		return nil, fmt.Errorf("netdelay: bind queue %d: %w", cfg.Queue, err)
	}
	d.log.Info("netdelay: queue bound", "delay", cfg.Delay, "jitter", cfg.Jitter, "loss", cfg.Loss, "seed", cfg.Seed)
	return d, nil
}

// Stats returns the counters so far.
func (d *Delayer) Stats() Stats {
	d.mu.Lock()
	pending := d.sched.len()
	d.mu.Unlock()
	return Stats{
		Received: d.received.Load(), Accepted: d.accepted.Load(), Dropped: d.dropped.Load(),
		Errors: d.errs.Load(), Overruns: d.overruns.Load(), Pending: pending,
	}
}

// Serve delays packets until ctx ends, then accepts every packet still
// held and releases the queue (from then on --queue-bypass lets packets
// through). It returns nil when ctx ended, or the error that stopped it.
func (d *Delayer) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errc <- d.readLoop(ctx) }()
	go func() { defer wg.Done(); errc <- d.sendLoop(ctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	_ = d.conn.SetReadDeadline(time.Unix(1, 0)) // unblocks readLoop
	wg.Wait()
	return errors.Join(err, d.Close())
}

// Close accepts every packet still held and releases the queue. Serve
// calls it; call it yourself only when you never call Serve.
func (d *Delayer) Close() error {
	d.release.Do(func() {
		_ = d.conn.SetReadDeadline(time.Time{})
		// Packets queued but not read yet would be dropped by the unbind:
		// read them now so they are accepted with the rest.
		buf := make([]byte, 64<<10)
		for {
			n, err := d.recv(buf, false)
			if err != nil {
				break
			}
			d.handle(buf[:n])
		}
		d.mu.Lock()
		held := d.sched.popDue(math.MaxInt64, nil)
		d.mu.Unlock()
		for i := range held {
			held[i].verdict = verdictAccept
		}
		err := d.sendVerdicts(held)
		// Unbind explicitly (closing the socket would too); a packet
		// arriving between the drain and the unbind is dropped by the
		// kernel, which TCP retransmits.
		if msg, merr := configMessage(d.cfg.Queue, cmdAttr(cmdUnbind)); merr == nil {
			msg.Header.Flags = netlink.Request
			_, serr := d.conn.Send(msg)
			err = errors.Join(err, serr)
		}
		d.relErr = errors.Join(err, d.conn.Close())
		st := d.Stats()
		d.log.Info("netdelay: queue released", "received", st.Received, "accepted", st.Accepted,
			"dropped", st.Dropped, "errors", st.Errors, "overruns", st.Overruns, "flushed", len(held))
	})
	return d.relErr
}

// now is the monotonic time used for due times.
func (d *Delayer) now() int64 { return int64(time.Since(d.epoch)) }

// delay draws one packet's fate: its delay, or drop.
func (d *Delayer) delay() (time.Duration, bool) {
	if d.cfg.Loss > 0 && d.rng.Float64() < d.cfg.Loss {
		return 0, false
	}
	if d.cfg.Jitter == 0 {
		return d.cfg.Delay, true
	}
	dl := d.cfg.Delay + time.Duration((d.rng.Float64()*2-1)*float64(d.cfg.Jitter))
	return max(dl, 0), true
}

func (d *Delayer) readLoop(ctx context.Context) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := d.recv(buf, true)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				if d.overruns.Add(1) == 1 {
					d.log.Warn("netdelay: receive buffer overflowed; some packets passed undelayed")
				}
				continue
			}
			return fmt.Errorf("netdelay: receive: %w", err)
		}
		d.handle(buf[:n])
	}
}

// handle schedules the packets of one datagram from the kernel.
func (d *Delayer) handle(b []byte) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		d.errs.Add(1)
		d.log.Warn("netdelay: unparsable netlink message", "err", err)
		return
	}
	wake := false
	d.mu.Lock()
	now := d.now()
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR {
			d.kernelError(m)
			continue
		}
		id, err := packetID(m.Header.Type, m.Data)
		if err != nil {
			if !errors.Is(err, errNotPacket) {
				d.errs.Add(1)
				d.log.Warn("netdelay: bad packet message", "err", err)
			}
			continue
		}
		d.received.Add(1)
		if dl, ok := d.delay(); ok {
			wake = d.sched.push(now+int64(dl), id, verdictAccept) || wake
		} else {
			wake = d.sched.push(now, id, verdictDrop) || wake
		}
	}
	d.mu.Unlock()
	if wake {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// kernelError counts an error the kernel returned for one of our verdicts.
func (d *Delayer) kernelError(m syscall.NetlinkMessage) {
	if len(m.Data) < 4 {
		return
	}
	errno := -int32(nativeUint32(m.Data))
	if errno == 0 {
		return // an acknowledgement
	}
	if d.errs.Add(1) <= 10 {
		d.log.Warn("netdelay: kernel rejected a verdict", "err", syscall.Errno(errno))
	}
}

func (d *Delayer) sendLoop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []pending
	for {
		d.mu.Lock()
		due = d.sched.popDue(d.now(), due[:0])
		next, ok := d.sched.next()
		d.mu.Unlock()
		if err := d.sendVerdicts(due); err != nil {
			return err
		}
		if ok {
			wait := time.Duration(next - d.now())
			if wait <= 0 {
				continue
			}
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// sendVerdicts sends verdicts in few system calls: the kernel processes
// every message of a netlink datagram in turn.
func (d *Delayer) sendVerdicts(ps []pending) error {
	const perSend = 256 // 8 KiB per datagram, well under the socket's send buffer
	var buf [perSend * verdictLen]byte
	for len(ps) > 0 {
		n := min(len(ps), perSend)
		b := buf[:0]
		for _, p := range ps[:n] {
			b = appendVerdict(b, d.cfg.Queue, p.id, p.verdict)
			if p.verdict == verdictDrop {
				d.dropped.Add(1)
			} else {
				d.accepted.Add(1)
			}
		}
		if err := d.send(b); err != nil {
			return fmt.Errorf("netdelay: send verdicts: %w", err)
		}
		ps = ps[n:]
	}
	return nil
}
