package checks

import (
	"fmt"
	"time"
)

type faultTP struct {
	ratio    *float64
	recovery *Sec
}

// throughput is check 7. Baseline: acknowledged transfers per second
// (single and bulk, by completion time) from the end of warmup to the first
// fault. For each fault, the mean over its whole active window (the
// engines' detection outage included: users live through it) over
// baseline must reach expect.throughput; dropped arrivals are simply not
// acknowledged, so they count against it. Recovery is the time from heal
// to the start of the first Options.RecoveryWindow whose mean reaches
// Options.RecoveryLevel (90%) of baseline; it must not exceed
// expect.recovery.
func (r *run) throughput() (Result, []faultTP) {
	b := r.newResult(CheckThroughput, "Throughput and recovery", Liveness)
	out := make([]faultTP, len(r.ix.Faults))
	s, ix := r.series, r.ix
	if !ix.HasLoad {
		b.add(Finding{Severity: SevUnknown, Message: "the history has no transfer load"})
		return b.finish("no load in the history"), out
	}
	baseLen := ix.FirstFault - ix.BaselineStart
	if !r.baselineOK {
		why := fmt.Sprintf("baseline from %s to %s (%s) is shorter than %s or has no acknowledged transfer",
			fmtDur(ix.BaselineStart), fmtDur(ix.FirstFault), fmtDur(baseLen), fmtDur(r.o.MinBaseline))
		b.add(Finding{Severity: SevUnknown, Message: why})
		for i := range ix.Faults {
			if ix.Faults[i].Injected {
				b.faultStatus(i, Unknown, "no baseline to compare with")
			}
		}
		return b.finish("cannot tell: " + why), out
	}
	b.counts["baselineMilliTPS"] = int64(r.baseline * 1000)
	if from, to, rate, bad := r.baselineStall(); bad {
		// No fault was active: what the lab or the harness does here is not
		// a fault's effect, and faults judged against it would be judged
		// against a stall.
		return r.baselineUnknown(b, out, from, to, "baseline unstable", fmt.Sprintf("from %s to %s, with no fault active, only %.1f transfers/s were acknowledged (%s of the baseline mean %.1f/s; a stable baseline keeps ≥ %s over every %s)",
			fmtDur(from), fmtDur(to), rate, pct(rate/r.baseline), r.baseline, pct(baselineStallLevel), fmtDur(baselineStallWindow)))
	}
	if acked, offered, bad := r.baselineSaturated(); bad {
		// A backlog that grows with no fault active: a fault's drop could
		// not be told from it, and the baseline is not what the system
		// sustains.
		return r.baselineUnknown(b, out, ix.BaselineStart, ix.FirstFault, "baseline saturated", fmt.Sprintf("with no fault active, %.1f transfers/s were acknowledged of %.1f/s offered (%s; a sustainable baseline acknowledges ≥ %s of what is offered): the lab or the harness could not keep up before any fault",
			acked, offered, pct(acked/offered), pct(baselineSaturationLevel)))
	}
	okBase := s.Sum(s.OK, ix.BaselineStart, ix.FirstFault)
	dropBase := s.Sum(s.Dropped, ix.BaselineStart, ix.FirstFault)
	if dropBase > 0 && float64(dropBase) > 0.01*float64(okBase+dropBase) {
		b.add(Finding{Severity: SevWarning, Message: fmt.Sprintf("%d arrivals dropped during the baseline (%s of offered): the lab or the harness was saturated before any fault",
			dropBase, pct(float64(dropBase)/float64(okBase+dropBase)))})
	}
	want := r.expect.Throughput
	budget := r.expect.Recovery.D()
	w := r.o.RecoveryWindow
	injected := 0
	for i, f := range ix.Faults {
		if !f.Injected {
			continue
		}
		injected++
		rate, ok := s.Rate(f.Inject, f.Recover)
		if !ok {
			b.faultStatus(i, Unknown, "fault window shorter than one bucket")
			b.add(Finding{Severity: SevUnknown, Fault: &i, Message: fmt.Sprintf("fault %d lasted %s: too short to measure throughput", i+1, fmtDur(f.Recover-f.Inject))})
			continue
		}
		ratio := rate / r.baseline
		rr := round3(ratio)
		out[i].ratio = &rr
		dropped := s.Sum(s.Dropped, f.Inject, f.Recover)
		msg := fmt.Sprintf("fault %d (%s): %.1f/s, %s of baseline %.1f/s (need %s), %d dropped",
			i+1, f.Name(), rate, pct(ratio), r.baseline, pct(want), dropped)
		from, to := Sec(f.Inject), Sec(f.Recover)
		if w := r.weakened(&i); ratio < want && w != "" {
			b.add(Finding{Severity: SevUnknown, Fault: &i, From: &from, To: &to, Message: "throughput too low: " + msg + "; " + w})
		} else if ratio < want {
			b.add(Finding{Severity: SevFail, Fault: &i, From: &from, To: &to, Message: "throughput too low: " + msg})
		} else {
			b.add(Finding{Severity: SevInfo, Fault: &i, From: &from, To: &to, Message: msg})
		}
		if !f.Recovered {
			b.add(Finding{Severity: SevInfo, Fault: &i, Message: fmt.Sprintf("fault %d never healed: recovery not measured", i+1)})
			b.faultSummary(i, msg)
			continue
		}
		limit := ix.LoadEnd + s.Bucket
		for _, g := range ix.Faults {
			if g.Injected && g.Inject >= f.Recover && g.Inject < limit {
				limit = g.Inject
			}
		}
		start := (f.Recover + s.Bucket - 1) / s.Bucket * s.Bucket
		found := false
		var rec time.Duration
		for t := start; t+w <= limit; t += s.Bucket {
			if v, ok := s.Rate(t, t+w); ok && v >= r.o.RecoveryLevel*r.baseline {
				found, rec = true, t-f.Recover
				break
			}
		}
		healed := Sec(f.Recover)
		switch {
		case found:
			rs := Sec(rec)
			out[i].recovery = &rs
			rmsg := fmt.Sprintf("fault %d: back to %s of baseline %s after heal (allowed %s)", i+1, pct(r.o.RecoveryLevel), fmtDur(rec), fmtDur(budget))
			if rec > budget {
				b.add(Finding{Severity: SevFail, Fault: &i, From: &healed, Message: "slow recovery: " + rmsg})
			} else {
				b.add(Finding{Severity: SevInfo, Fault: &i, From: &healed, Message: rmsg})
			}
			msg += fmt.Sprintf("; recovered in %s", fmtDur(rec))
		case limit-f.Recover >= budget+w:
			b.add(Finding{Severity: SevFail, Fault: &i, From: &healed, Message: fmt.Sprintf("no recovery: fault %d healed at %s and throughput never returned to %s of baseline in the %s that followed (allowed %s)",
				i+1, fmtDur(f.Recover), pct(r.o.RecoveryLevel), fmtDur(limit-f.Recover), fmtDur(budget))})
		default:
			b.add(Finding{Severity: SevUnknown, Fault: &i, From: &healed, Message: fmt.Sprintf("fault %d: the load ended or the next fault began %s after heal, before throughput recovered and before the %s recovery budget ran out",
				i+1, fmtDur(limit-f.Recover), fmtDur(budget))})
		}
		b.faultSummary(i, msg)
	}
	if injected == 0 {
		return b.finish(fmt.Sprintf("no fault injected; %.1f transfers/s", r.baseline)), out
	}
	if b.res.Status == Pass {
		return b.finish(fmt.Sprintf("baseline %.1f transfers/s; every fault kept ≥ %s of it and recovery took ≤ %s", r.baseline, pct(want), fmtDur(budget))), out
	}
	return b.finish(fmt.Sprintf("baseline %.1f transfers/s; %d throughput or recovery problems (need ≥ %s during faults, recovery ≤ %s)",
		r.baseline, failCount(b.res.Findings)+countSev(b.res.Findings, SevUnknown), pct(want), fmtDur(budget))), out
}

// baselineUnknown makes the check UNKNOWN, and every injected fault with
// it, for a baseline that faults cannot be judged against: label names the
// reason per fault, detail says what was measured.
func (r *run) baselineUnknown(b *builder, out []faultTP, from, to time.Duration, label, detail string) (Result, []faultTP) {
	why := label + ": " + detail
	fs, ts := Sec(from), Sec(to)
	b.add(Finding{Severity: SevUnknown, From: &fs, To: &ts, Message: why})
	for i := range r.ix.Faults {
		if r.ix.Faults[i].Injected {
			b.faultStatus(i, Unknown, label)
		}
	}
	return b.finish("cannot tell: " + why), out
}

// A baseline is saturated when it acknowledged less than this share of the
// arrivals offered to it: the system was building a backlog before any
// fault (measured: 41–78 of 100 transfers/s, p50 up to 21 s, with a
// Kubernetes build beside the lab; a healthy baseline acknowledges 98–107 %).
const baselineSaturationLevel = 0.8

// baselineSaturated reports the baseline's acknowledged and offered rates
// and whether the first fell below baselineSaturationLevel of the second.
func (r *run) baselineSaturated() (acked, offered float64, saturated bool) {
	acked, ok1 := r.series.Rate(r.ix.BaselineStart, r.ix.FirstFault)
	offered, ok2 := r.series.OfferedRate(r.ix.BaselineStart, r.ix.FirstFault)
	return acked, offered, ok1 && ok2 && offered > 0 && acked < baselineSaturationLevel*offered
}

// A baseline is unstable when some baselineStallWindow of it (no fault
// active) acknowledged less than baselineStallLevel of the baseline mean:
// a stall the faults did not cause.
const (
	baselineStallWindow = 5 * time.Second
	baselineStallLevel  = 0.25
)

// baselineStall returns the first baselineStallWindow of the baseline
// whose rate is below baselineStallLevel of the mean, if any.
func (r *run) baselineStall() (from, to time.Duration, rate float64, found bool) {
	s, ix := r.series, r.ix
	start := (ix.BaselineStart + s.Bucket - 1) / s.Bucket * s.Bucket
	for t := start; t+baselineStallWindow <= ix.FirstFault; t += s.Bucket {
		if v, ok := s.Rate(t, t+baselineStallWindow); ok && v < baselineStallLevel*r.baseline {
			return t, t + baselineStallWindow, v, true
		}
	}
	return 0, 0, 0, false
}

func countSev(fs []Finding, sev string) int {
	n := 0
	for _, f := range fs {
		if f.Severity == sev {
			n++
		}
	}
	return n
}
