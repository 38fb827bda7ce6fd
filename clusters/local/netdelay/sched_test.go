package netdelay

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedulePopsInDueOrderAndKeepsFIFOOnTies(t *testing.T) {
	var s schedule
	rng := rand.New(rand.NewPCG(1, 2))
	var dues []int64
	for i := range 2000 {
		due := int64(rng.IntN(50)) // many equal due times
		dues = append(dues, due)
		s.push(due, uint32(i), verdictAccept)
	}
	got := s.popDue(int64(25), nil)
	for _, p := range got {
		require.LessOrEqual(t, p.due, int64(25))
	}
	got = append(got, s.popDue(1<<62, nil)...)
	require.Len(t, got, len(dues))
	require.Zero(t, s.len())
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		require.LessOrEqual(t, a.due, b.due)
		if a.due == b.due {
			require.Less(t, a.id, b.id, "equal delays must keep arrival order")
		}
	}
	slices.Sort(dues)
	for i := range got {
		require.Equal(t, dues[i], got[i].due)
	}
}

func TestSchedulePushReportsNewEarliest(t *testing.T) {
	var s schedule
	require.True(t, s.push(10, 1, verdictAccept))
	require.False(t, s.push(20, 2, verdictAccept))
	require.True(t, s.push(5, 3, verdictDrop))
	due, ok := s.next()
	require.True(t, ok)
	require.Equal(t, int64(5), due)
}

func TestDelayDrawsAreSeededAndBounded(t *testing.T) {
	draws := func(seed uint64) []time.Duration {
		cfg := Config{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.3, Seed: seed}
		d := &Delayer{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
		var out []time.Duration
		for range 1000 {
			dl, ok := d.delay()
			if !ok {
				dl = -1 // dropped
			}
			out = append(out, dl)
		}
		return out
	}
	a, b, c := draws(7), draws(7), draws(8)
	require.Equal(t, a, b, "same seed, same fates")
	require.NotEqual(t, a, c)
	drops := 0
	for _, dl := range a {
		if dl < 0 {
			drops++
			continue
		}
		require.GreaterOrEqual(t, dl, 15*time.Millisecond)
		require.LessOrEqual(t, dl, 25*time.Millisecond)
	}
	require.InDelta(t, 300, drops, 60, "about 30%% loss")
}

func TestDelayClampsAtZeroAndFullLossDropsAll(t *testing.T) {
	d := &Delayer{cfg: Config{Delay: time.Millisecond, Jitter: 10 * time.Millisecond}, rng: rand.New(rand.NewPCG(1, 1))}
	for range 1000 {
		dl, ok := d.delay()
		require.True(t, ok)
		require.GreaterOrEqual(t, dl, time.Duration(0))
	}
	d = &Delayer{cfg: Config{Loss: 1}, rng: rand.New(rand.NewPCG(1, 1))}
	for range 1000 {
		_, ok := d.delay()
		require.False(t, ok)
	}
}

func TestConfigValidation(t *testing.T) {
	require.Error(t, Config{Delay: -1}.validate())
	require.Error(t, Config{Jitter: -1}.validate())
	require.Error(t, Config{Loss: 1.5}.validate())
	require.NoError(t, Config{Delay: time.Second, Loss: 1}.validate())
}

func TestVerdictEncodingAndPacketParsing(t *testing.T) {
	b := appendVerdict(nil, 7, 0xdeadbeef, verdictAccept)
	require.Len(t, b, verdictLen)
	// A verdict has the same attribute layout as a packet header (id first),
	// so re-typing it as a packet exercises the parser.
	b[4] = 0              // message type NFQNL_MSG_PACKET, subsystem stays queue
	b[22] = attrPacketHdr // the verdict header becomes a packet header
	msg := b[16:]
	id, err := packetID(uint16(b[5])<<8, msg)
	require.NoError(t, err)
	// In a verdict the first 4 bytes are the verdict, then the id.
	require.Equal(t, verdictAccept, id)
	_, err = packetID(0x0201, msg)
	require.ErrorIs(t, err, errNotPacket)
	_, err = packetID(uint16(b[5])<<8, msg[:6])
	require.Error(t, err)
}

func TestRuleArgs(t *testing.T) {
	require.Equal(t,
		[]string{"-w", "-t", "mangle", "-A", "POSTROUTING", "-o", "veth1", "-j", "NFQUEUE", "--queue-num", "3", "--queue-bypass"},
		EgressRule("veth1", 3).Args("-A"))
	require.Equal(t,
		[]string{"-w", "-t", "mangle", "-D", "POSTROUTING", "!", "-o", "lo", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"},
		NodeRule(0).Args("-D"))
}

// BenchmarkSchedule measures the verdict scheduling path per packet: push
// with a jittered delay and pop what is due, with ~1000 packets held
// (20 ms at 50k packets/s).
func BenchmarkSchedule(b *testing.B) {
	d := &Delayer{cfg: Config{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.01}, rng: rand.New(rand.NewPCG(1, 1))}
	const step = int64(20 * time.Microsecond) // 50k packets/s of virtual time
	now := int64(0)
	var out []pending
	buf := make([]byte, 0, 256*verdictLen)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now += step
		dl, ok := d.delay()
		v := verdictAccept
		if !ok {
			v = verdictDrop
		}
		d.sched.push(now+int64(dl), uint32(i), v)
		out = d.sched.popDue(now, out[:0])
		buf = buf[:0]
		for _, p := range out {
			buf = appendVerdict(buf, 0, p.id, p.verdict)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(d.sched.len()), "held")
}
