package checks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/topology"
)

// faultEffect is check 8, against vacuous passes: every fault must have
// changed something observable while it was active — a service sampled in
// a worse state or with fewer members than just before it, throughput down
// by Options.EffectThroughputDrop, a share of slow transfers
// (latencyEffect), or more failed/unknown transfers than the
// baseline rate explains. A fault that never got injected fails too. When
// analyze predicts a service change that the samples never show, that is a
// warning (the fault may not have bitten where it should).
// effectLookback: how far before an inject the system must have been at
// baseline for a throughput drop to count as that fault's effect.
const effectLookback = 10 * time.Second

func (r *run) faultEffect(infos []FaultInfo) Result {
	b := r.newResult(CheckFaultEffect, "Every fault had an effect", Liveness)
	ix, s := r.ix, r.series
	noFault := r.pred.at(nil)
	var vacuous, effective int
	for i, f := range ix.Faults {
		if !f.Injected {
			b.add(Finding{Severity: SevFail, Fault: &i, Message: fmt.Sprintf("fault %d (%s) is in the scenario but was never injected", i+1, f.Name())})
			vacuous++
			continue
		}
		r.slips(b, i, f)
		if f.Weakened != "" {
			at := Sec(f.Inject)
			b.add(Finding{Severity: SevWarning, Fault: &i, From: &at,
				Message: fmt.Sprintf("fault %d (%s) went in before the system was back at full strength after the heal before it: %s", i+1, f.Name(), f.Weakened)})
		}
		var effects []string
		observedSvc := map[string]bool{}
		for _, sv := range r.t.Services {
			if e := r.serviceEffect(sv, f); e != "" {
				effects = append(effects, e)
				observedSvc[sv.Name] = true
			}
		}
		if r.baselineOK {
			// The fault's own doing only: a system that had not recovered
			// from the fault before (throughput still down in the 10 s
			// before this inject) shows a drop this fault did not make.
			before, okBefore := s.Rate(max(r.ix.BaselineStart, f.Inject-effectLookback), f.Inject)
			healthyBefore := !okBefore || before > (1-r.o.EffectThroughputDrop)*r.baseline
			if rate, ok := s.Rate(f.Inject, f.Recover); ok && healthyBefore && rate <= (1-r.o.EffectThroughputDrop)*r.baseline {
				effects = append(effects, fmt.Sprintf("throughput fell to %s of baseline", pct(rate/r.baseline)))
			}
			if !healthyBefore {
				b.add(Finding{Severity: SevWarning, Fault: &i, Message: fmt.Sprintf("fault %d (%s) began with throughput already at %s of baseline (an earlier fault not recovered): a drop, slow transfers or errors during it are not counted as its effect", i+1, f.Name(), pct(before/r.baseline))})
			}
			if e := r.latencyEffect(f, healthyBefore); e != "" {
				effects = append(effects, e)
			}
			baseErr := float64(s.Sum(s.Errors, ix.BaselineStart, ix.FirstFault)) / (ix.FirstFault - ix.BaselineStart).Seconds()
			errs := s.Sum(s.Errors, f.Inject, f.Recover)
			if exp := baseErr * (f.Recover - f.Inject).Seconds(); healthyBefore && float64(errs) > 2*exp+3 {
				effects = append(effects, fmt.Sprintf("%d transfers failed or timed out (baseline rate predicts %.0f)", errs, exp))
			}
		}
		var missed []string
		pred := r.pred.at([]*evidence.Fault{f})
		for _, sv := range r.t.Services {
			j, j0 := pred[sv.Index], noFault[sv.Index]
			if (j.Verdict != j0.Verdict || j.MembersUp != j0.MembersUp) && !observedSvc[sv.Name] && len(ix.Samples[sv.Name]) > 0 {
				missed = append(missed, fmt.Sprintf("%s %s", sv.Name, j.Verdict))
			}
		}
		infos[i].Effects = effects
		from, to := Sec(f.Inject), Sec(f.Recover)
		if len(effects) == 0 {
			vacuous++
			b.add(Finding{Severity: SevFail, Fault: &i, From: &from, To: &to,
				Message: fmt.Sprintf("fault %d (%s) changed nothing observable: no service state, throughput, latency or error change — a vacuous pass (was it really applied?)", i+1, f.Name())})
			continue
		}
		effective++
		if len(missed) > 0 {
			b.add(Finding{Severity: SevWarning, Fault: &i, From: &from, To: &to,
				Message: fmt.Sprintf("fault %d (%s): analyze predicts %s, but the samples never showed it", i+1, f.Name(), strings.Join(missed, ", "))})
		}
		b.faultSummary(i, strings.Join(effects, "; "))
	}
	b.counts["faults"] = int64(len(ix.Faults))
	b.counts["withEffect"] = int64(effective)
	b.counts["vacuous"] = int64(vacuous)
	if len(ix.Faults) == 0 {
		return b.finish("the scenario has no faults")
	}
	if vacuous > 0 {
		return b.finish(fmt.Sprintf("%d of %d faults had no observable effect", vacuous, len(ix.Faults)))
	}
	if len(ix.Faults) == 1 {
		return b.finish("the fault had an observable effect")
	}
	return b.finish(fmt.Sprintf("all %d faults had an observable effect", len(ix.Faults)))
}

// latencyEffect reports slow transfers as the fault's effect, or "". A
// transfer is slow when it took EffectLatencyFactor times the baseline
// p99 or longer; the fault slowed the system when at least
// EffectSlowShare of the transfers attributed to its window were slow
// (the baseline has under 1% by definition). A rule on the window's p99
// alone counted the 8 slowest of 800 transfers: a busy machine's hiccup
// took it from 197 ms to 426 ms during a fault that changed nothing (one
// PDU of a dual-fed rack), and the negative control passed as "p99 rose".
// Slow transfers in the lookback before the inject, at that share, mean
// an earlier disturbance still going on: not this fault's doing; and the
// slowdown must last through the window (sustained).
func (r *run) latencyEffect(f *evidence.Fault, healthyBefore bool) string {
	if !healthyBefore || r.baseP99 <= 0 {
		return ""
	}
	slow := time.Duration(r.o.EffectLatencyFactor * float64(r.baseP99))
	lat := r.ix.Latencies(f.Inject, f.Recover)
	share := slowShare(lat, slow)
	if len(lat) == 0 || share < r.o.EffectSlowShare {
		return ""
	}
	if prior := r.ix.Latencies(max(r.ix.BaselineStart, f.Inject-effectLookback), f.Inject); len(prior) > 0 && slowShare(prior, slow) >= r.o.EffectSlowShare {
		return ""
	}
	if !r.sustained(f, slow) {
		return ""
	}
	return fmt.Sprintf("%s of transfers took %s or longer (%g× the baseline p99); p99 %s against %s", pct(share), fmtDur(slow), r.o.EffectLatencyFactor, fmtDur(evidence.Percentile(lat, 0.99)), fmtDur(r.baseP99))
}

// sustained says whether slow transfers run through the fault's window:
// at least EffectSlowShare of them slow in at least half of its seconds
// that have transfers. A slowdown the fault causes lasts while it does (a
// delayed link, a member that keeps timing out); a burst of a few seconds
// is a busy machine's hiccup, which made an idle fault (one PDU of a
// dual-fed rack) look effective: 87 slow transfers in 4 s, 12 s after the
// inject, in a 20 s window (runner, ci33). A fault whose slowdown is
// brief shows its effect in the services' states or errors instead.
func (r *run) sustained(f *evidence.Fault, slow time.Duration) bool {
	type bucket struct{ n, slow int }
	buckets := map[time.Duration]*bucket{}
	for _, l := range r.ix.TimedLatencies(f.Inject, f.Recover) {
		k := (l.At - f.Inject) / time.Second
		b := buckets[k]
		if b == nil {
			b = &bucket{}
			buckets[k] = b
		}
		b.n++
		if l.Latency >= slow {
			b.slow++
		}
	}
	var slowSeconds int
	for _, b := range buckets {
		if float64(b.slow) >= r.o.EffectSlowShare*float64(b.n) {
			slowSeconds++
		}
	}
	return len(buckets) > 0 && 2*slowSeconds >= len(buckets)
}

// slowShare is the fraction of sorted latencies at or above slow.
func slowShare(sorted []time.Duration, slow time.Duration) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i, _ := slices.BinarySearch(sorted, slow)
	return float64(len(sorted)-i) / float64(len(sorted))
}

// serviceEffect returns the first sign, during the fault, that a service
// got worse than it was just before it, or "". "Before" is the last sample
// that answered before the inject; "during" are the samples started after
// it (a probe that straddles the inject may show either state).
func (r *run) serviceEffect(sv *topology.Service, f *evidence.Fault) string {
	preObs, preUp := topology.OK, 0
	for _, s := range r.ix.Samples[sv.Name] {
		if s.Valid && s.End < f.Inject {
			preObs, preUp = s.Observed, s.MembersUp
		}
	}
	for _, s := range r.ix.Samples[sv.Name] {
		if s.T < f.Inject || !s.Valid {
			continue
		}
		if s.T > f.Recover {
			break
		}
		if s.Observed > preObs || (s.MembersUp > 0 && preUp > 0 && s.MembersUp < preUp) {
			return fmt.Sprintf("%s observed %s (%d of %d up) at %s", sv.Name, s.Observed, s.MembersUp, len(sv.Members), fmtDur(s.T))
		}
	}
	return ""
}

// maxSlip: a fault going in or out later than this after its planned time
// is reported. The schedule is kept (a late fault still lasts its for),
// but its window no longer sits where the scenario put it.
const maxSlip = time.Second

// slips warns about a fault injected or healed late; a slip changes no
// status: what happened is judged where it happened.
func (r *run) slips(b *builder, i int, f *evidence.Fault) {
	for _, sl := range []struct {
		what string
		late time.Duration
		at   time.Duration
	}{{"injected", f.InjectLate, f.Inject}, {"healed", f.RecoverLate, f.Recover}} {
		if sl.late <= maxSlip && sl.late >= -maxSlip {
			continue
		}
		at, when := Sec(sl.at), "after"
		if sl.late < 0 {
			sl.late, when = -sl.late, "before"
		}
		b.add(Finding{Severity: SevWarning, Fault: &i, From: &at,
			Message: fmt.Sprintf("fault %d (%s) %s %s %s its planned time (scheduler slip over %s)", i+1, f.Name(), sl.what, fmtDur(sl.late), when, fmtDur(maxSlip))})
	}
}
