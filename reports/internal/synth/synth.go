// Package synth generates deterministic, realistic run evidence (history
// events and a final state) for a scenario, so that the checkers and
// renderers can be tested without a lab: a clean run by default, and knobs
// that break one thing at a time (negative controls).
package synth

import (
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Config shapes a synthetic run. Zero values take the defaults noted.
type Config struct {
	// Rate overrides the scenario's load.rate (transfers/s).
	Rate float64
	// Start: when the load starts (lab set-up before it). Default 1s.
	Start time.Duration
	// Outage: after each injection, arrivals are refused this long (the
	// engines detecting the failure). Default 3s.
	Outage time.Duration
	// DetectionLag: samples show a change this long after it happens.
	// Default 2s.
	DetectionLag time.Duration
	// Latency of an acknowledged transfer; doubled while a fault is
	// active. Default 40ms.
	Latency time.Duration
	// BulkEvery: every n-th arrival is a bulk transfer. Default 10.
	BulkEvery int
	// Partitions of the prepare topic. Default 6.
	Partitions int

	// Negative controls, by fault index (into the scenario's faults).
	// Vacuous: the fault is logged but nothing happens.
	Vacuous map[int]bool
	// Collapse: 90% of arrivals refused while the fault is active.
	Collapse map[int]bool
	// SlowRecovery: after heal, half the arrivals are refused this long.
	SlowRecovery map[int]time.Duration
	// ObservedDown: samples show this service down for the fault's whole
	// active window (after the detection lag).
	ObservedDown map[int]string
	// NotInjected: the fault never appears in the history.
	NotInjected map[int]bool
	// RedisLoss: this many Redis writes acknowledged during the fault are
	// gone from the final state.
	RedisLoss map[int]int
	// WriteOutage: a service refuses writes for a stretch after the
	// fault's injection (a slow failover): its samples show it read-only
	// and, for the document store, bulk writes are refused.
	WriteOutage map[int]WriteOutage
	// ProbeTimeouts: these samples of a service time out (no state)
	// instead of being recorded.
	ProbeTimeouts []ProbeTimeout
	// Capacity, when in (0, 1), is the share of the offered rate the
	// system can acknowledge: transfers queue behind each other and their
	// latency grows for the whole run (a saturated lab).
	Capacity float64
}

// WriteOutage is a service refusing writes from From to To after its
// fault's injection.
type WriteOutage struct {
	Service  string
	From, To time.Duration
}

// ProbeTimeout replaces the sample of Service at T by a timed-out probe.
type ProbeTimeout struct {
	Service string
	T       time.Duration
}

// Run is a generated run.
type Run struct {
	Events []history.Event
	Final  *history.Final
}

const currency = "USD"

// Generate makes a run of the defaulted scenario.
func Generate(sc *scenarios.Scenario, cfg Config) (*Run, error) {
	sc = sc.WithDefaults()
	t, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	c := cfg
	if c.Rate <= 0 {
		c.Rate = *sc.Load.Rate
	}
	if c.Start <= 0 {
		c.Start = time.Second
	}
	if c.Outage <= 0 {
		c.Outage = 3 * time.Second
	}
	if c.DetectionLag <= 0 {
		c.DetectionLag = 2 * time.Second
	}
	if c.Latency <= 0 {
		c.Latency = 40 * time.Millisecond
	}
	if c.BulkEvery <= 0 {
		c.BulkEvery = 10
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	g := &gen{c: c, sc: sc, t: t, final: &history.Final{
		Transfers: map[string]history.LedgerTransfer{}, Bulk: map[string]bool{}, RedisKeys: map[string]bool{},
	}, offsets: make([]int64, c.Partitions), pos: map[string]int64{}}
	g.run()
	return &Run{Events: g.ev, Final: g.final}, nil
}

type window struct {
	idx           int
	fault         topology.Fault
	inject, heal  time.Duration
	vacuous       bool
	collapse      bool
	slow          time.Duration
	down          string
	outage        WriteOutage
	blocks        bool // the ledger pipeline cannot write while active
	redisLoss     int
	redisLossDone int
}

type gen struct {
	c       Config
	sc      *scenarios.Scenario
	t       *topology.Topology
	ev      []history.Event
	final   *history.Final
	wins    []*window
	offsets []int64
	pos     map[string]int64 // participant → position
}

func (g *gen) add(e history.Event) { g.ev = append(g.ev, e) }

func (g *gen) run() {
	warm := g.sc.Load.Warmup.D()
	dur := g.sc.Load.Duration.D()
	t0 := g.c.Start
	measure := t0 + warm
	end := measure + dur
	g.add(history.Event{T: t0, Type: history.PhaseChange, Phase: "warmup"})
	g.add(history.Event{T: measure, Type: history.PhaseChange, Phase: "baseline"})
	for i, f := range g.sc.Faults {
		tg, _ := scenarios.ParseTarget(f.Target)
		w := &window{idx: i, fault: topology.Fault{Action: f.Action, Target: tg}, inject: measure + f.At.D(),
			vacuous: g.c.Vacuous[i], collapse: g.c.Collapse[i], slow: g.c.SlowRecovery[i], down: g.c.ObservedDown[i], redisLoss: g.c.RedisLoss[i], outage: g.c.WriteOutage[i]}
		w.heal = end
		if f.For != nil {
			w.heal = w.inject + f.For.D()
		}
		if g.c.NotInjected[i] {
			continue
		}
		st := topology.NewState(g.t)
		_ = st.Apply(w.fault)
		for _, sv := range g.t.Services {
			if (sv.Kind == scenarios.KindMySQL || sv.Kind == scenarios.KindKafka || sv.Kind == scenarios.KindStateless) && st.Judge(sv).Verdict >= topology.ReadOnly {
				w.blocks = true
			}
		}
		g.wins = append(g.wins, w)
		g.add(history.Event{T: w.inject, Type: history.Fault, Phase: "inject", Action: f.Action, Target: f.Target})
		g.add(history.Event{T: w.heal, Type: history.Fault, Phase: "recover", Action: f.Action, Target: f.Target})
		g.add(history.Event{T: w.inject, Type: history.PhaseChange, Phase: "fault", Detail: f.Action + " " + f.Target})
	}
	g.add(history.Event{T: end, Type: history.PhaseChange, Phase: "converge"})

	parts := *g.sc.Load.Participants
	for p := range parts {
		g.pos[participant(p)] = 0
	}
	step := time.Duration(float64(time.Second) / g.c.Rate)
	n := 0
	for at := t0; at < end; at += step {
		n++
		g.arrival(n, at, parts)
	}
	g.samples(t0, end+5*time.Second)
	g.finish(parts)
	slices.SortStableFunc(g.ev, func(a, b history.Event) int { return int(a.T - b.T) })
}

func participant(i int) string { return fmt.Sprintf("dfsp%d", i+1) }

// refused decides, deterministically, whether the n-th arrival at t is
// refused: during the detection outage, a collapse or a slow recovery.
func (g *gen) refused(n int, at time.Duration) bool {
	for _, w := range g.wins {
		if w.vacuous {
			continue
		}
		switch {
		case at >= w.inject && at < w.inject+g.c.Outage:
			return true
		case w.blocks && at >= w.inject && at < w.heal:
			return true
		case w.collapse && at >= w.inject && at < w.heal:
			return n%10 != 0
		case w.slow > 0 && at >= w.heal && at < w.heal+w.slow:
			return n%2 == 0
		}
	}
	return false
}

func (g *gen) active(at time.Duration) *window {
	for _, w := range g.wins {
		if at >= w.inject && at < w.heal && !w.vacuous {
			return w
		}
	}
	return nil
}

func (g *gen) arrival(n int, at time.Duration, parts int) {
	payer, payee := participant(n%parts), participant((n+1+n/parts)%parts)
	if payer == payee {
		payee = participant((n + 1) % parts)
	}
	amount := int64(100 + n%7*10)
	lat := g.c.Latency
	if g.active(at) != nil {
		lat *= 2
	}
	if c := g.c.Capacity; c > 0 && c < 1 {
		// The n-th arrival is served when a system doing c of the offered
		// rate gets to it.
		served := g.c.Start + time.Duration(float64(n)/(g.c.Rate*c)*float64(time.Second))
		lat = max(lat, served-at)
	}
	if n%g.c.BulkEvery == 0 {
		id := fmt.Sprintf("bulk-%06d", n)
		g.add(history.Event{T: at, Type: history.Invoke, Op: history.OpBulk, ID: id, Process: n % 16})
		if g.refused(n, at) || g.outageOfKind(scenarios.KindMongoDB, at) {
			g.add(history.Event{T: at + lat, Type: history.Fail, Op: history.OpBulk, ID: id, Process: n % 16, Error: "not primary"})
			return
		}
		g.add(history.Event{T: at + lat, Type: history.OK, Op: history.OpBulk, ID: id, Process: n % 16})
		g.final.Bulk[id] = true
		return
	}
	id := fmt.Sprintf("tr-%06d", n)
	tr := history.Event{T: at, Type: history.Invoke, Op: history.OpTransfer, ID: id, Process: n % 16, Payer: payer, Payee: payee, Amount: amount, Currency: currency}
	g.add(tr)
	if g.refused(n, at) {
		tr.T, tr.Type, tr.Error = at+time.Second, history.Fail, "prepare refused: no quorum"
		g.add(tr)
		return
	}
	// Duplicate check in Redis.
	g.add(history.Event{T: at + lat/8, Type: history.OK, Op: history.OpRedisSet, ID: id})
	g.final.RedisKeys[id] = true
	if w := g.active(at); w != nil && w.redisLossDone < w.redisLoss && at >= w.inject+g.c.Outage {
		delete(g.final.RedisKeys, id)
		w.redisLossDone++
	}
	// The prepare record.
	p := int32(n % g.c.Partitions)
	off := g.offsets[p]
	g.offsets[p]++
	g.add(history.Event{T: at + lat/4, Type: history.OK, Op: history.OpProduce, ID: id, Topic: "topic-transfer-prepare", Partition: p, Offset: off})
	g.add(history.Event{T: at + lat/2, Type: history.OK, Op: history.OpConsume, ID: id, Topic: "topic-transfer-prepare", Partition: p, Offset: off})
	tr.T, tr.Type = at+lat, history.OK
	g.add(tr)

	g.final.Transfers[id] = history.LedgerTransfer{State: "COMMITTED", Rows: 1, Payer: payer, Payee: payee, Amount: amount, Currency: currency}
	g.pos[payer] += amount
	g.final.PositionChanges = append(g.final.PositionChanges, history.PositionChange{Participant: payer, Currency: currency, TransferID: id, Kind: "reserve", Change: amount, Value: g.pos[payer]})
	g.pos[payee] -= amount
	g.final.PositionChanges = append(g.final.PositionChanges, history.PositionChange{Participant: payee, Currency: currency, TransferID: id, Kind: "commit", Change: -amount, Value: g.pos[payee]})
}

// samples observes every service twice a second: analyze's verdict for
// the faults active DetectionLag earlier (a vacuous fault changes nothing).
func (g *gen) samples(from, to time.Duration) {
	for at := from; at < to; at += 500 * time.Millisecond {
		st := topology.NewState(g.t)
		var down string
		for _, w := range g.wins {
			seen := at - g.c.DetectionLag
			if w.vacuous || seen < w.inject || seen >= w.heal {
				continue
			}
			_ = st.Apply(w.fault)
			if w.down != "" {
				down = w.down
			}
		}
		for _, sv := range g.t.Services {
			j := st.Judge(sv)
			obs, up := j.Verdict, int(j.MembersUp)
			if sv.Name == down {
				obs, up = topology.Down, 0
			}
			if g.outageOf(sv.Name, at) {
				obs = max(obs, topology.ReadOnly)
			}
			if g.timesOut(sv.Name, at) {
				g.add(history.Event{T: at, Took: 2 * time.Second, Type: history.Sample, Service: sv.Name, Observed: "unknown", Timeout: true, Error: "context deadline exceeded"})
				continue
			}
			writable := obs < topology.ReadOnly
			g.add(history.Event{T: at, Type: history.Sample, Service: sv.Name, Observed: obs.String(), MembersUp: up, Writable: &writable})
		}
	}
}

// outageOf reports whether service svc refuses writes at t.
func (g *gen) outageOf(svc string, t time.Duration) bool {
	for _, w := range g.wins {
		o := w.outage
		if o.Service == svc && t >= w.inject+o.From && t < w.inject+o.To {
			return true
		}
	}
	return false
}

// outageOfKind reports whether some service of the kind refuses writes at t.
func (g *gen) outageOfKind(kind string, t time.Duration) bool {
	for _, sv := range g.t.Services {
		if sv.Kind == kind && g.outageOf(sv.Name, t) {
			return true
		}
	}
	return false
}

func (g *gen) timesOut(svc string, t time.Duration) bool {
	for _, p := range g.c.ProbeTimeouts {
		if p.Service == svc && p.T == t {
			return true
		}
	}
	return false
}

func (g *gen) finish(parts int) {
	for p := range parts {
		g.final.Positions = append(g.final.Positions, history.Position{Participant: participant(p), Currency: currency, Value: g.pos[participant(p)], NetDebitCap: 1 << 40})
	}
	for _, sv := range g.t.Services {
		if sv.Kind == scenarios.KindStateless {
			continue
		}
		for m := range sv.Members {
			g.final.Replicas = append(g.final.Replicas, history.ReplicaView{Service: sv.Name, Member: m, Digest: "rows=" + fmt.Sprint(len(g.final.Transfers)) + ";crc=5f3a"})
		}
	}
}
