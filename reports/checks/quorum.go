package checks

import (
	"fmt"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/topology"
)

// Sampling expectations: the runner samples each service at least twice a
// second; a gap longer than maxGap is a hole in the evidence.
const (
	samplePeriod = 500 * time.Millisecond
	maxGap       = 2 * time.Second
)

// straddles reports whether an inject or recover happened while sample s
// was being taken: what it saw may be from before or after the change, so
// it cannot be compared with either prediction.
func straddles(cs []time.Duration, s evidence.Sample) bool {
	for _, c := range cs {
		if s.T < c && c <= s.End {
			return true
		}
	}
	return false
}

// settling reports whether t is within budget after an inject or heal:
// a service gets its failover budget (its engine's detection and election
// timeouts, plus margin) before its state is compared with analyze's
// prediction, instead of one fixed grace for every engine.
func settling(cs []time.Duration, budget, t time.Duration) bool {
	for _, c := range cs {
		if t >= c && t < c+budget {
			return true
		}
	}
	return false
}

// Mismatch classes.
const (
	mmNone        = ""
	mmUnavailable = "unavailable" // writes refused where analyze predicted them possible (or down where read-only)
	mmPredicted   = "predicted"   // writes refused, as analyze predicted: the layout does not hold quorum under this fault
	mmWeaker      = "weaker"      // degraded where analyze predicted ok: a member did not come back
	mmBetter      = "better"      // writes accepted where analyze predicted no quorum
)

func classify(obs, pred topology.Verdict) string {
	switch {
	case obs >= topology.ReadOnly && pred < topology.ReadOnly, obs == topology.Down && pred == topology.ReadOnly:
		return mmUnavailable
	case obs >= topology.ReadOnly:
		return mmPredicted
	case obs == topology.Degraded && pred == topology.OK:
		return mmWeaker
	case obs < topology.ReadOnly && pred >= topology.ReadOnly:
		return mmBetter
	}
	return mmNone
}

// quorum is check 5: each service's sampled state against analyze's
// verdict for the faults active at the time, once the service's failover
// budget has passed since the last inject or heal. Samples whose probe
// timed out are unknown and never compared; samples inside a write outage
// that ended during its fault are the failover check's.
// With expect.quorum: held, quorum must hold: a service observed read-only
// or down fails the check, whether analyze predicted it (the layout cannot
// survive the fault: the finding says so) or not (the engines did worse
// than the model: down where read-only is predicted counts too). A member
// missing where none should be, or writes accepted where analyze predicts
// no quorum, are warnings. With expect.quorum: any the check is skipped
// and its findings are informative.
func (r *run) quorum() Result {
	b := r.newResult(CheckQuorum, "Quorum as analyze predicts", Liveness)
	enforce := r.expect.Quorum != "any"
	cs := r.ix.Changes()
	from := time.Duration(0)
	if r.ix.HasLoad {
		from = r.ix.LoadStart
	}
	var compared, mismatched, unsampled, timeouts int
	comparedInFault := make([][]int, len(r.ix.Faults))
	for i := range comparedInFault {
		comparedInFault[i] = make([]int, len(r.t.Services))
	}
	for _, sv := range r.t.Services {
		var ss []evidence.Sample
		for _, s := range r.ix.Samples[sv.Name] {
			if s.T >= from {
				ss = append(ss, s)
			}
		}
		if len(ss) == 0 {
			unsampled++
			b.add(Finding{Severity: SevUnknown, Service: sv.Name, Message: sv.Name + ": never sampled, so its quorum cannot be compared"})
			continue
		}
		r.sampleGaps(b, sv.Name, ss)
		budget := r.budgets[sv.Name].Budget.D()
		var cur *Finding
		var curClass string
		var curN int
		var curObs, curPred topology.Verdict
		flush := func() {
			if cur == nil {
				return
			}
			cur.Message = strings.Replace(cur.Message, "%N", plural(curN, "sample", "samples"), 1)
			b.add(*cur)
			cur, curClass, curN = nil, "", 0
		}
		invalid, timedOut := 0, 0
		for _, s := range ss {
			switch {
			case s.Timeout:
				timedOut++
				continue
			case !s.Valid:
				invalid++
				continue
			}
			if settling(cs, budget, s.T) || straddles(cs, s) || r.inClosedOutage(sv.Index, s.T) {
				continue
			}
			compared++
			for i, f := range r.ix.Faults {
				if f.ActiveAt(s.T) {
					comparedInFault[i][sv.Index]++
				}
			}
			j := r.predictAt(s.T)[sv.Index]
			cl := classify(s.Observed, j.Verdict)
			if cl != mmNone && cl != mmPredicted {
				mismatched++
			}
			if cur != nil && cl == curClass && s.Observed == curObs && j.Verdict == curPred {
				to := Sec(s.T)
				cur.To = &to
				curN++
				continue
			}
			flush()
			if cl == mmNone {
				continue
			}
			sev := SevWarning
			if (cl == mmUnavailable || cl == mmPredicted) && enforce {
				sev = SevFail
			}
			if !enforce {
				sev = SevInfo
			}
			active := "no fault active"
			if fs := r.ix.Active(s.T); len(fs) > 0 {
				var names []string
				for _, f := range fs {
					names = append(names, f.Name())
				}
				active = "active: " + strings.Join(names, ", ")
			}
			what := map[string]string{
				mmUnavailable: "writes refused where analyze predicts them possible",
				mmPredicted:   "quorum lost, as analyze predicts: this layout cannot hold quorum under this fault",
				mmWeaker:      "a member missing where analyze predicts every member back",
				mmBetter:      "writes accepted where analyze predicts no quorum (a split brain, or the fault did not bite?)",
			}[cl]
			at := Sec(s.T)
			blamed := r.blame(s.T)
			if w := r.weakened(blamed); w != "" && sev == SevFail {
				// Analyze judged the fault on a system at full strength;
				// this one met a system still missing what an earlier
				// fault took.
				sev, what = SevUnknown, what+"; "+w
			}
			cur = &Finding{Severity: sev, Service: sv.Name, From: &at, Fault: blamed,
				Message: fmt.Sprintf("%s observed %s (%d up) where analyze predicts %s (%s), %%N: %s",
					sv.Name, s.Observed, s.MembersUp, j.Verdict, active, what)}
			curClass, curN, curObs, curPred = cl, 1, s.Observed, j.Verdict
		}
		flush()
		if invalid > 0 {
			b.add(Finding{Severity: SevWarning, Service: sv.Name, Message: fmt.Sprintf("%s: %d samples carried no state (probe errors)", sv.Name, invalid)})
		}
		if timedOut > 0 {
			timeouts += timedOut
			b.add(Finding{Severity: SevInfo, Service: sv.Name, Message: fmt.Sprintf("%s: %s timed out: state unknown, not compared", sv.Name, plural(timedOut, "probe", "probes"))})
		}
	}
	for i, f := range r.ix.Faults {
		if !f.Injected {
			continue
		}
		var silent, short []string
		for _, sv := range r.t.Services {
			switch {
			case f.Recover-f.Inject <= r.budgets[sv.Name].Budget.D():
				short = append(short, sv.Name)
			case comparedInFault[i][sv.Index] == 0 && len(r.ix.Samples[sv.Name]) > 0:
				silent = append(silent, sv.Name)
			}
		}
		if len(short) > 0 {
			b.add(Finding{Severity: SevWarning, Fault: &i, Message: fmt.Sprintf("fault %d lasted %s, within the failover budget of %s: their quorum was not compared", i+1, fmtDur(f.Recover-f.Inject), strings.Join(short, ", "))})
		}
		if len(silent) > 0 {
			b.add(Finding{Severity: SevUnknown, Fault: &i, Message: fmt.Sprintf("no usable sample of %s while fault %d was active after settling", strings.Join(silent, ", "), i+1)})
		}
		b.faultSummary(i, "every service as analyze predicts")
	}
	if compared == 0 && unsampled == 0 && r.ix.Observing() != "" {
		// without load the samples are the only evidence: none compared
		// is no pass
		b.add(Finding{Severity: SevUnknown, Message: "no sample could be compared with analyze (all timed out, invalid or within a failover budget)"})
	}
	b.counts["samplesCompared"] = int64(compared)
	b.counts["samplesMismatched"] = int64(mismatched)
	b.counts["servicesUnsampled"] = int64(unsampled)
	b.counts["probeTimeouts"] = int64(timeouts)
	summary := fmt.Sprintf("%d samples compared after each service's failover budget, %d differ from analyze", compared, mismatched)
	if fails := failCount(b.res.Findings); fails > 0 {
		summary = fmt.Sprintf("quorum lost: %s with a service read-only or down (%d samples compared, %d differ from analyze)", plural(fails, "stretch", "stretches"), compared, mismatched)
	}
	if !enforce {
		b.res.Status = Skip
		for i := range b.fst {
			b.fst[i] = Skip
		}
		return b.finish("not enforced (expect.quorum: any); " + summary)
	}
	return b.finish(summary)
}

func failCount(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Severity == SevFail {
			n++
		}
	}
	return n
}

// sampleGaps warns about holes in a service's sampling.
func (r *run) sampleGaps(b *builder, svc string, ss []evidence.Sample) {
	gaps, worstGap := 0, time.Duration(0)
	var worstAt time.Duration
	for i := 1; i < len(ss); i++ {
		if g := ss[i].T - ss[i-1].T; g > maxGap {
			gaps++
			if g > worstGap {
				worstGap, worstAt = g, ss[i-1].T
			}
		}
	}
	span := ss[len(ss)-1].T - ss[0].T
	if span > 0 {
		rate := float64(len(ss)-1) / span.Seconds()
		if rate < 1/samplePeriod.Seconds()*0.9 {
			b.add(Finding{Severity: SevWarning, Service: svc, Message: fmt.Sprintf("%s sampled %.1f times/s, below the 2/s the comparison assumes", svc, rate)})
		}
	}
	if gaps > 0 {
		at := Sec(worstAt)
		to := Sec(worstAt + worstGap)
		b.add(Finding{Severity: SevWarning, Service: svc, From: &at, To: &to, Message: fmt.Sprintf("%s: %d gaps over %s between samples (longest %s)", svc, gaps, maxGap, fmtDur(worstGap))})
	}
}

// timelines gives each service's observed and predicted states over time
// for the report's plot.
func (r *run) timelines() []ServiceTimeline {
	points := append([]time.Duration{0}, r.ix.Changes()...)
	var out []ServiceTimeline
	for _, sv := range r.t.Services {
		tl := ServiceTimeline{Service: sv.Name, Kind: sv.Kind, Observed: []Segment{}, Predicted: []Segment{}}
		for k, p := range points {
			end := r.ix.End
			if k+1 < len(points) {
				end = points[k+1]
			}
			if end <= p {
				continue
			}
			tl.Predicted = appendSeg(tl.Predicted, p, end, r.predictAt(p)[sv.Index].Verdict.String())
		}
		ss := r.ix.Samples[sv.Name]
		for _, s := range ss {
			if s.Timeout {
				tl.ProbeTimeouts++
			}
		}
		for i, s := range ss {
			state := "unknown"
			if s.Valid {
				state = s.Observed.String()
			}
			end := s.T + samplePeriod
			if i+1 < len(ss) {
				if next := ss[i+1].T; next-s.T <= maxGap {
					end = next
				}
			}
			tl.Observed = appendSeg(tl.Observed, s.T, end, state)
			if i+1 < len(ss) && ss[i+1].T > end {
				tl.Observed = appendSeg(tl.Observed, end, ss[i+1].T, "unknown")
			}
		}
		out = append(out, tl)
	}
	return out
}

// appendSeg extends the last segment when the state repeats.
func appendSeg(segs []Segment, from, to time.Duration, state string) []Segment {
	if n := len(segs); n > 0 && segs[n-1].State == state && segs[n-1].To.D() >= from {
		segs[n-1].To = Sec(max(to, segs[n-1].To.D()))
		return segs
	}
	return append(segs, Segment{From: Sec(from), To: Sec(to), State: state})
}
