package netdelay

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// pingPackage is pinned to Debian 12's version; only the tests need ping.
const pingPackage = "iputils-ping=3:20221126-1+deb12u1"

// requireLab: the delayer needs root, iptables and NFQUEUE, and ping.
func requireLab(tb testing.TB) {
	tb.Helper()
	enginetest.RequireInstalled(tb, func(ctx context.Context) error {
		if err := Install(ctx, enginetest.Log(tb)); err != nil {
			return err
		}
		return install.Apt(ctx, enginetest.Log(tb), pingPackage)
	}, "iptables", "ping")
}

var nsCounter atomic.Int32

// pair is two network namespaces joined by a veth pair: A (198.18.250.1)
// and B (198.18.250.2).
type pair struct {
	a, b     string // namespace names
	ifA, ifB string
	addrA    string
	addrB    string
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return string(out)
}

func newPair(t testing.TB) pair {
	t.Helper()
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, nsCounter.Add(1))
	p := pair{
		a: "ndly-a" + id, b: "ndly-b" + id,
		ifA: "nda" + id, ifB: "ndb" + id,
		addrA: "198.18.250.1", addrB: "198.18.250.2",
	}
	for _, ns := range []string{p.a, p.b} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("deleting netns %s: %v: %s", ns, err, out)
			}
		})
	}
	run(t, "ip", "link", "add", p.ifA, "netns", p.a, "type", "veth", "peer", "name", p.ifB, "netns", p.b)
	for _, s := range []struct{ ns, dev, addr string }{{p.a, p.ifA, p.addrA}, {p.b, p.ifB, p.addrB}} {
		run(t, "ip", "-n", s.ns, "addr", "add", s.addr+"/30", "dev", s.dev)
		run(t, "ip", "-n", s.ns, "link", "set", s.dev, "up")
		run(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	}
	return p
}

// addRules installs rules in ns and removes them in t.Cleanup.
func addRules(t testing.TB, ns string, rules ...Rule) {
	t.Helper()
	log := enginetest.Log(t)
	require.NoError(t, AddRules(context.Background(), log, ns, rules...))
	t.Cleanup(func() {
		if err := DeleteRules(context.Background(), log, ns, rules...); err != nil {
			t.Errorf("deleting rules: %v", err)
		}
	})
}

// inNetNS runs fn on a fresh OS thread moved into the named namespace, so
// sockets fn creates live there. The thread is discarded if it cannot be
// moved back.
func inNetNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

var rttRE = regexp.MustCompile(`= [\d.]+/([\d.]+)/[\d.]+/[\d.]+ ms`)

// ping pings to from ns and returns the average RTT and ping's output.
func ping(t testing.TB, ns, to string, count int) (time.Duration, string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", strconv.Itoa(count),
		"-i", "0.2", "-W", "2", to).CombinedOutput()
	m := rttRE.FindStringSubmatch(string(out))
	if m == nil {
		return -1, string(out)
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return time.Duration(ms * float64(time.Millisecond)), string(out)
}

// listen accepts (and closes) TCP connections on addr inside ns.
func listen(t testing.TB, ns, addr string) string {
	t.Helper()
	var ln net.Listener
	require.NoError(t, inNetNS(ns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// connect measures a TCP connect from ns (SYN out, SYN-ACK back).
func connect(ns, addr string, timeout time.Duration) (time.Duration, error) {
	var took time.Duration
	err := inNetNS(ns, func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, timeout)
		took = time.Since(start)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return took, err
}

// startDelayer binds the queue in ns and serves it until the returned
// stop function (also run by t.Cleanup) is called.
func startDelayer(t testing.TB, ns string, cfg Config) (*Delayer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := OpenInNetNS(ctx, enginetest.Log(t), ns, cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return d, stop
}

const queue = 7

func TestDelayAddsLatencyToPingAndTCPConnect(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	addRules(t, p.a, EgressRule(p.ifA, queue))

	// No delayer bound yet: --queue-bypass lets traffic through.
	base, out := ping(t, p.a, p.addrB, 5)
	require.Positive(t, base, "baseline ping through the bypassed queue failed:\n%s", out)
	addr := listen(t, p.b, p.addrB)
	baseConnect, err := connect(p.a, addr, 5*time.Second)
	require.NoError(t, err)

	const delay = 20 * time.Millisecond
	d, stop := startDelayer(t, p.a, Config{Queue: queue, Delay: delay, Jitter: 2 * time.Millisecond, Seed: 1})

	// Only A's egress is delayed: the echo request waits, the reply does not.
	rtt, out := ping(t, p.a, p.addrB, 10)
	require.Positive(t, rtt, "ping through the delayer failed:\n%s", out)
	require.Contains(t, out, " 0% packet loss")
	t.Logf("ping RTT: baseline %s, with %s delay %s", base, delay, rtt)
	require.GreaterOrEqual(t, rtt-base, 15*time.Millisecond, "delay not applied:\n%s", out)

	took, err := connect(p.a, addr, 5*time.Second)
	require.NoError(t, err)
	t.Logf("TCP connect: baseline %s, with %s delay %s", baseConnect, delay, took)
	require.GreaterOrEqual(t, took-baseConnect, 15*time.Millisecond, "SYN not delayed")

	st := d.Stats()
	require.GreaterOrEqual(t, st.Received, uint64(11), "10 echo requests and a SYN went through the queue")
	require.GreaterOrEqual(t, st.Accepted, uint64(11))
	require.Zero(t, st.Dropped)
	require.Zero(t, st.Errors)

	stop()
	st = d.Stats()
	require.Zero(t, st.Pending)
	require.Equal(t, st.Received, st.Accepted+st.Dropped, "every packet got a verdict")
}

func TestFullLossDropsEverything(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	addRules(t, p.a, EgressRule(p.ifA, queue))
	addr := listen(t, p.b, p.addrB)

	d, _ := startDelayer(t, p.a, Config{Queue: queue, Loss: 1, Seed: 1})
	_, out := ping(t, p.a, p.addrB, 3)
	require.Contains(t, out, "100% packet loss", out)
	_, err := connect(p.a, addr, 1500*time.Millisecond)
	require.Error(t, err, "TCP connect must fail when every SYN is dropped")
	st := d.Stats()
	require.GreaterOrEqual(t, st.Dropped, uint64(4))
	require.Zero(t, st.Accepted)
}

func TestReleaseLetsTrafficFlowUndelayed(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	addRules(t, p.a, EgressRule(p.ifA, queue))

	const delay = 400 * time.Millisecond
	d, stop := startDelayer(t, p.a, Config{Queue: queue, Delay: delay})
	rtt, out := ping(t, p.a, p.addrB, 2)
	require.GreaterOrEqual(t, rtt, 300*time.Millisecond, "delay not applied:\n%s", out)

	// Packets held at release are accepted at once, not dropped: start a
	// ping, stop the delayer while its first request is held.
	cmd := exec.Command("ip", "netns", "exec", p.a, "ping", "-n", "-q", "-c", "1", "-W", "3", p.addrB)
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return d.Stats().Pending > 0 }, 2*time.Second, 5*time.Millisecond)
	stop()
	require.NoError(t, cmd.Wait(), "held packet was not released:\n%s", buf.String())

	// Unbound: --queue-bypass sends packets straight through.
	rtt, out = ping(t, p.a, p.addrB, 5)
	require.Contains(t, out, " 0% packet loss")
	require.Less(t, rtt, delay/2, "traffic still delayed after release:\n%s", out)

	// And the queue can be bound again.
	_, stop = startDelayer(t, p.a, Config{Queue: queue, Delay: delay})
	rtt, out = ping(t, p.a, p.addrB, 2)
	require.GreaterOrEqual(t, rtt, 300*time.Millisecond, "delay not applied after rebinding:\n%s", out)
	stop()
}

func TestSecondDelayerOnSameQueueIsRefused(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	startDelayer(t, p.a, Config{Queue: queue})
	_, err := OpenInNetNS(context.Background(), enginetest.Log(t), p.a, Config{Queue: queue})
	require.Error(t, err)
	// A different namespace has its own queues.
	_, stop := startDelayer(t, p.b, Config{Queue: queue})
	stop()
}

func TestRunInNetNSDelaysUntilCancelled(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	addRules(t, p.a, EgressRule(p.ifA, queue))
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		runErr = RunInNetNS(ctx, enginetest.Log(t), p.a, Config{Queue: queue, Delay: 200 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	// Run gives no signal when bound: wait until pings are delayed.
	require.Eventually(t, func() bool {
		rtt, _ := ping(t, p.a, p.addrB, 1)
		return rtt >= 150*time.Millisecond
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	<-finished
	require.NoError(t, runErr)
	_, out := ping(t, p.a, p.addrB, 2)
	require.Contains(t, out, " 0% packet loss")
}

func TestOpenBindsInTheCallersNetNS(t *testing.T) {
	requireLab(t)
	p := newPair(t)
	addRules(t, p.a, EgressRule(p.ifA, queue))
	var d *Delayer
	require.NoError(t, inNetNS(p.a, func() (err error) {
		d, err = Open(context.Background(), enginetest.Log(t), Config{Queue: queue, Delay: 200 * time.Millisecond})
		return err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	rtt, out := ping(t, p.a, p.addrB, 2)
	require.GreaterOrEqual(t, rtt, 150*time.Millisecond, "delay not applied:\n%s", out)
}

func TestFullQueueFailsOpen(t *testing.T) {
	requireLab(t)
	const n = 200
	u := newUDPPath(t, Config{Queue: queue, Delay: 2 * time.Second, MaxLen: 10}, n)
	for range n {
		u.send()
	}
	// Packets beyond the 10 held pass at once instead of being dropped.
	require.Eventually(t, func() bool { return u.got.Load() >= n-10 }, time.Second, 5*time.Millisecond,
		"got %d of %d", u.got.Load(), n)
	require.Eventually(t, func() bool { return u.d.Stats().Pending == 10 }, time.Second, 5*time.Millisecond)
	require.Equal(t, uint64(10), u.d.Stats().Received, "the queue holds at most MaxLen")
}

func TestOpenInMissingNetNSFails(t *testing.T) {
	_, err := OpenInNetNS(context.Background(), enginetest.Log(t), "ndly-does-not-exist", Config{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

// udpPath is a UDP flow from A to B through a delayer on A's egress; the
// receiver records each datagram's one-way latency (the sender puts its
// send time in the payload; both ends share the host's clock).
type udpPath struct {
	d    *Delayer
	stop func()
	tx   net.Conn
	got  atomic.Int64
	lat  chan time.Duration
}

func newUDPPath(b testing.TB, cfg Config, expect int) *udpPath {
	p := newPair(b)
	addRules(b, p.a, EgressRule(p.ifA, cfg.Queue))
	u := &udpPath{lat: make(chan time.Duration, expect)}
	var rx net.PacketConn
	require.NoError(b, inNetNS(p.b, func() (err error) {
		rx, err = net.ListenPacket("udp", net.JoinHostPort(p.addrB, "0"))
		return err
	}))
	b.Cleanup(func() { rx.Close() })
	_ = rx.(*net.UDPConn).SetReadBuffer(8 << 20)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := rx.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 8 {
				sent := int64(binary.BigEndian.Uint64(buf))
				select {
				case u.lat <- time.Duration(time.Now().UnixNano() - sent):
				default:
				}
			}
			u.got.Add(1)
		}
	}()
	require.NoError(b, inNetNS(p.a, func() (err error) {
		u.tx, err = net.Dial("udp", rx.LocalAddr().String())
		return err
	}))
	b.Cleanup(func() { u.tx.Close() })
	u.d, u.stop = startDelayer(b, p.a, cfg)
	return u
}

func (u *udpPath) send() {
	var payload [100]byte
	binary.BigEndian.PutUint64(payload[:], uint64(time.Now().UnixNano()))
	_, _ = u.tx.Write(payload[:])
}

// finish waits for n datagrams and reports rates and latency percentiles.
func (u *udpPath) finish(b *testing.B, n int, start time.Time) {
	_ = engines.WaitFor(context.Background(), 5*time.Second, time.Millisecond, "all datagrams", func(context.Context) error {
		if u.got.Load() < int64(n) {
			return fmt.Errorf("%d of %d", u.got.Load(), n)
		}
		return nil
	})
	elapsed := time.Since(start)
	b.StopTimer()
	st := u.d.Stats()
	u.stop()
	close(u.lat)
	var lat []time.Duration
	for l := range u.lat {
		lat = append(lat, l)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(st.Accepted)/elapsed.Seconds(), "delayed-pkts/s")
	b.ReportMetric(float64(n-int(st.Received)), "bypassed")
	b.ReportMetric(float64(int64(n)-u.got.Load()), "lost")
	b.ReportMetric(float64(st.Overruns), "overruns")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}

// BenchmarkEndToEnd floods UDP datagrams from A to B as fast as one
// sender can through a delayer (1 ms delay): the most packets per second
// the delayer keeps up with, and whether any passed undelayed (fail-open).
func BenchmarkEndToEnd(b *testing.B) {
	requireLab(b)
	u := newUDPPath(b, Config{Queue: queue, Delay: time.Millisecond}, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		u.send()
	}
	u.finish(b, b.N, start)
}

// BenchmarkLatencyAt5kpps sends a steady 5000 datagrams/s through a
// 20 ms ± 0 delayer: how close to 20 ms the delivered latency stays.
func BenchmarkLatencyAt5kpps(b *testing.B) {
	requireLab(b)
	u := newUDPPath(b, Config{Queue: queue, Delay: 20 * time.Millisecond}, b.N)
	tick := time.NewTicker(2 * time.Millisecond) // 10 datagrams per tick
	defer tick.Stop()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 10 {
		<-tick.C
		for range min(10, b.N-i) {
			u.send()
		}
	}
	u.finish(b, b.N, start)
}
