package checks

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Outage is a stretch of refused writes.
type Outage struct {
	// From: the first evidence of refused writes; To: the first evidence
	// of accepted writes after it (run times).
	From     Sec `json:"from"`
	To       Sec `json:"to"`
	Duration Sec `json:"duration"`
	// Refused: the last evidence of refused writes in it. Writes resumed
	// somewhere in (Refused, To]: the outage lasted at least Refused−From.
	// A wide gap is a stretch without evidence (probes timed out, nothing
	// written), which proves neither.
	Refused Sec `json:"refused"`
	// Open: writes had not resumed when the fault healed (To is the
	// heal). That is quorum lost, which the quorum check judges, not a
	// slow failover.
	Open bool `json:"open,omitempty"`
}

// ServiceFailover is one service's failover under one fault, measured
// from its samples and its own operations.
type ServiceFailover struct {
	Service string `json:"service"`
	// Predicted: analyze's verdict for the faults active at injection.
	Predicted string `json:"predicted"`
	Budget    Sec    `json:"budget"`
	// Outage: the longest stretch of refused writes that began while the
	// fault was active; Outages counts them all.
	Outage  *Outage `json:"outage,omitempty"`
	Outages int     `json:"outages"`
	// Steady: from injection until the service stays as analyze predicts
	// for the rest of the fault (nil: it never did).
	Steady *Sec `json:"steady,omitempty"`
	// FullStrength: from the heal until the service stays ok (nil: it
	// never did before the next fault or the end, or never healed).
	FullStrength *Sec `json:"fullStrength,omitempty"`
	// ProbeTimeouts: probes that ran out of time from injection until a
	// budget after the heal (unknown, not compared).
	ProbeTimeouts int `json:"probeTimeouts,omitempty"`
}

// wpoint is one piece of evidence of whether a service took writes: at t
// at the latest, and no earlier than from (a write's invocation: it may
// have been accepted any time in between).
type wpoint struct {
	from, t time.Duration
	ok      bool
}

// writeEvidence merges a service's samples (timeouts are no evidence) and
// its own writes: bulk writes for the document store, refused (fail) or
// acknowledged (ok), at their completion, when the write is known to have
// been refused or accepted. An unknown outcome (info: a timeout, a lost
// connection) is no evidence either way. A Redis duplicate check's fail
// means "key exists" — the write was answered — so only its ok counts.
func (r *run) writeEvidence(sv *topology.Service) []wpoint {
	var ps []wpoint
	for _, s := range r.ix.Samples[sv.Name] {
		if s.Valid {
			ps = append(ps, wpoint{s.T, s.T, s.Observed < topology.ReadOnly})
		}
	}
	op := map[string]string{scenarios.KindMongoDB: history.OpBulk, scenarios.KindRedis: history.OpRedisSet}[sv.Kind]
	for _, o := range r.ix.Ops[op] {
		ok := o.Outcome == history.OK
		refused := o.Outcome == history.Fail && op == history.OpBulk
		if o.Completed && (ok || refused) && r.servedBy(o, sv) {
			ps = append(ps, wpoint{o.Invoke, o.Done, ok})
		}
	}
	slices.SortStableFunc(ps, func(a, b wpoint) int { return int(a.t - b.t) })
	return ps
}

// servedBy reports whether operation o went to service sv: the service it
// names, else the scenario's only service of sv's kind.
func (r *run) servedBy(o *evidence.Op, sv *topology.Service) bool {
	if name := o.Field(func(e history.Event) string { return e.Service }); name != "" {
		return name == sv.Name
	}
	n := 0
	for _, s := range r.t.Services {
		if s.Kind == sv.Kind {
			n++
		}
	}
	return n == 1
}

// outagesIn finds the stretches of refused writes that begin in [from, to);
// one still running at to is open (cut at to). A write accepted ends an
// outage only if it was invoked after the outage began: one invoked
// before may have been accepted before.
func outagesIn(ps []wpoint, from, to time.Duration) []Outage {
	var out []Outage
	var start, last time.Duration
	in := false
	end := func(at time.Duration) {
		open := at > to
		if open {
			at = to
		}
		out = append(out, Outage{From: Sec(start), To: Sec(at), Duration: Sec(at - start), Refused: Sec(min(last, at)), Open: open})
		in = false
	}
	for _, p := range ps {
		switch {
		case p.t < from:
		case !in && !p.ok && p.t < to:
			start, last, in = p.t, p.t, true
		case in && !p.ok:
			last = p.t
		case in && p.ok && p.from >= start:
			end(p.t)
		}
	}
	if in {
		end(math.MaxInt64)
	}
	return out
}

// stableFrom returns the time of the first valid sample in [from, to)
// from which every later one there satisfies want, or false.
func stableFrom(ss []evidence.Sample, from, to time.Duration, want func(evidence.Sample) bool) (time.Duration, bool) {
	var at time.Duration
	ok := false
	for _, s := range ss {
		if !s.Valid || s.T < from || s.T >= to {
			continue
		}
		switch {
		case !want(s):
			ok = false
		case !ok:
			at, ok = s.T, true
		}
	}
	return at, ok
}

// measureFailovers measures every service under every injected fault;
// the result is indexed [fault][service index], with every closed
// outage kept apart for the checks.
func (r *run) measureFailovers() {
	r.fo = make([][]ServiceFailover, len(r.ix.Faults))
	r.closed = make([][][]Outage, len(r.ix.Faults))
	for i, f := range r.ix.Faults {
		r.fo[i] = make([]ServiceFailover, len(r.t.Services))
		r.closed[i] = make([][]Outage, len(r.t.Services))
		if !f.Injected {
			continue
		}
		js := r.predictAt(f.Inject)
		for _, sv := range r.t.Services {
			r.fo[i][sv.Index], r.closed[i][sv.Index] = r.measure(f, sv, js[sv.Index].Verdict)
		}
	}
}

func (r *run) measure(f *evidence.Fault, sv *topology.Service, pred topology.Verdict) (ServiceFailover, []Outage) {
	bud := r.budgets[sv.Name]
	fo := ServiceFailover{Service: sv.Name, Predicted: pred.String(), Budget: bud.Budget}
	outs := outagesIn(r.writeEvidence(sv), f.Inject, r.failoverEnd(f))
	var closed []Outage
	for _, o := range outs {
		if fo.Outage == nil || o.Duration > fo.Outage.Duration {
			fo.Outage = &o
		}
		if !o.Open {
			closed = append(closed, o)
		}
	}
	fo.Outages = len(outs)
	ss := r.ix.Samples[sv.Name]
	if at, ok := stableFrom(ss, f.Inject, f.Recover, func(s evidence.Sample) bool { return s.Observed == r.predictAt(s.T)[sv.Index].Verdict }); ok {
		d := Sec(at - f.Inject)
		fo.Steady = &d
	}
	if f.Recovered {
		if at, ok := stableFrom(ss, f.Recover, r.nextInject(f.Recover), func(s evidence.Sample) bool { return s.Observed == topology.OK }); ok {
			d := Sec(at - f.Recover)
			fo.FullStrength = &d
		}
	}
	for _, s := range ss {
		if s.Timeout && s.T >= f.Inject && s.T < f.Recover+bud.Budget.D() {
			fo.ProbeTimeouts++
		}
	}
	return fo, closed
}

// failoverEnd is where an outage under f must have ended to be a
// failover: f's recovery, or another fault's recovery before it. An
// outage that ends once another fault is healed ended because of that
// heal (two members paused, one thawed: the quorum is back), not because
// the engines failed over; it stays the quorum check's to compare.
func (r *run) failoverEnd(f *evidence.Fault) time.Duration {
	end := f.Recover
	for _, g := range r.ix.Faults {
		if g != f && g.Injected && g.Recovered && g.Recover > f.Inject && g.Recover < end {
			end = g.Recover
		}
	}
	return end
}

// nextInject is the first injection after t, or the end of the history.
func (r *run) nextInject(t time.Duration) time.Duration {
	next := r.ix.End + time.Nanosecond
	for _, g := range r.ix.Faults {
		if g.Injected && g.Inject > t && g.Inject < next {
			next = g.Inject
		}
	}
	return next
}

// inClosedOutage reports whether t falls in a closed outage of a service:
// those samples are the failover check's to judge, never a quorum
// mismatch.
func (r *run) inClosedOutage(svc int, t time.Duration) bool {
	for i := range r.closed {
		for _, o := range r.closed[i][svc] {
			if t >= o.From.D() && t < o.To.D() {
				return true
			}
		}
	}
	return false
}

// failover is check 8: every outage that ended while its fault was still
// active (the engines failed over) must have lasted no longer than the
// service's budget. Outages where analyze predicts no quorum are not
// failovers; outages that never ended during the fault are the quorum
// check's. An outage over the budget only through a stretch without
// evidence (its last refusal within the budget, its probes then timing
// out) is unknown, not failed: a starved harness is no slow failover.
func (r *run) failover() Result {
	b := r.newResult(CheckFailover, "Failover within budget", Liveness)
	var measured, over, unknown int
	for i, f := range r.ix.Faults {
		if !f.Injected {
			continue
		}
		longest := ""
		var longestD time.Duration = -1
		for _, sv := range r.t.Services {
			fo := r.fo[i][sv.Index]
			if mustVerdict(fo.Predicted) >= topology.ReadOnly {
				continue
			}
			for _, o := range r.closed[i][sv.Index] {
				measured++
				if o.Duration.D() > longestD {
					longestD = o.Duration.D()
					longest = fmt.Sprintf("longest: %s %s of its %s budget", sv.Name, o.Duration, fo.Budget)
				}
				if o.Duration.D() <= fo.Budget.D() {
					continue
				}
				from, to := o.From, o.To
				bud := r.budgets[sv.Name]
				if known := o.Refused - o.From; known.D() <= fo.Budget.D() {
					unknown++
					b.add(Finding{Severity: SevUnknown, Service: sv.Name, Fault: &i, From: &from, To: &to,
						Message: fmt.Sprintf("%s refused writes for at least %s and at most %s (%s–%s) during fault %d (%s): no evidence of its writes from %s to %s (probes timed out), so whether it failed over within its budget of %s (%s: %s) is unknown",
							sv.Name, known, o.Duration, at(from), at(to), i+1, f.Name(), at(o.Refused), at(to), bud.Budget, bud.Source, bud.Derivation)})
					continue
				}
				over++
				b.add(Finding{Severity: SevFail, Service: sv.Name, Fault: &i, From: &from, To: &to,
					Message: fmt.Sprintf("%s refused writes for %s (%s–%s) during fault %d (%s): over its failover budget of %s (%s: %s)",
						sv.Name, o.Duration, at(from), at(to), i+1, f.Name(), bud.Budget, bud.Source, bud.Derivation)})
			}
		}
		if longest == "" {
			longest = "no write outage observed"
		}
		b.faultSummary(i, "every failover within budget; "+longest)
	}
	b.counts["outagesMeasured"] = int64(measured)
	b.counts["outagesOverBudget"] = int64(over)
	b.counts["outagesUnknown"] = int64(unknown)
	if over > 0 {
		return b.finish(fmt.Sprintf("%s of %d over the service's failover budget", plural(over, "write outage", "write outages"), measured))
	}
	if unknown > 0 {
		return b.finish(fmt.Sprintf("%s of %d over the service's failover budget only through a stretch without evidence: unknown", plural(unknown, "write outage", "write outages"), measured))
	}
	return b.finish(fmt.Sprintf("%s, each within its service's failover budget", plural(measured, "write outage", "write outages")))
}

func mustVerdict(s string) topology.Verdict {
	v, _ := topology.ParseVerdict(s)
	return v
}

func at(s Sec) string { return fmt.Sprintf("+%.1fs", s.D().Seconds()) }
