package checks

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Input is a run's evidence.
type Input struct {
	// Scenario, with defaults applied (scenarios.Parse does).
	Scenario *scenarios.Scenario
	// Topology of the scenario; built from Scenario when nil.
	Topology *topology.Topology
	// Events: history.jsonl.
	Events []history.Event
	// Final state; nil when it could not be read at all (FinalError says
	// why): the checks that need it report UNKNOWN.
	Final      *history.Final
	FinalError string
	Seed       uint64
	Backend    string
	Started    time.Time
}

// Read-error keys: a Final.ReadErrors entry under one of these (the JSON
// name of the Final field it concerns, optionally followed by "/" and a
// service name) makes the checks using that part report UNKNOWN.
const (
	PartTransfers       = "transfers"
	PartPositions       = "positions"
	PartPositionChanges = "positionChanges"
	PartBulk            = "bulk"
	PartRedisKeys       = "redisKeys"
	PartReplicas        = "replicas"
)

// run holds what every check shares.
type run struct {
	in     Input
	o      Options
	sc     *scenarios.Scenario
	t      *topology.Topology
	ix     *evidence.Index
	series *evidence.Series
	pred   *predictor
	expect Expectations
	// baseline throughput (transfers/s) and whether it could be measured.
	baseline   float64
	baselineOK bool
	baseP99    time.Duration
	// faultNames for messages.
	faultNames []string
	// budgets: each service's failover budget, resolved once.
	budgets map[string]Budget
	// fo: the failover measured per fault and service index; closed:
	// the outages that ended while their fault was active.
	fo     [][]ServiceFailover
	closed [][][]Outage
}

// Run judges a run. It fails only when the scenario has no usable
// topology; missing evidence makes checks UNKNOWN instead.
func Run(in Input, opts Options) (*Report, error) {
	o := opts.withDefaults()
	sc := in.Scenario
	if sc == nil {
		return nil, fmt.Errorf("checks: no scenario")
	}
	sc = sc.WithDefaults()
	t := in.Topology
	if t == nil {
		var err error
		if t, err = topology.Build(sc); err != nil {
			return nil, fmt.Errorf("checks: topology of %s: %w", sc.Name, err)
		}
	}
	r := &run{in: in, o: o, sc: sc, t: t, pred: newPredictor(t)}
	r.ix = evidence.Build(in.Events, sc)
	r.series = r.ix.Series(o.Bucket)
	e := sc.Expect
	r.expect = Expectations{Quorum: e.Quorum, AcknowledgedLoss: *e.AcknowledgedLoss, Throughput: *e.Throughput, Recovery: Sec(e.Recovery.D())}
	for _, f := range r.ix.Faults {
		r.faultNames = append(r.faultNames, f.Name())
	}
	r.budgets = r.resolveBudgets()
	r.measureFailovers()
	if r.ix.FirstFault-r.ix.BaselineStart >= o.MinBaseline {
		r.baseline, r.baselineOK = r.series.Rate(r.ix.BaselineStart, r.ix.FirstFault)
		// Completions above the offered rate are a backlog (from a slow
		// warmup) draining, not what the system sustains: judged against
		// them, a fault that changed nothing looks like a drop.
		if offered, ok := r.series.OfferedRate(r.ix.BaselineStart, r.ix.FirstFault); ok && offered > 0 {
			r.baseline = min(r.baseline, offered)
		}
		r.baselineOK = r.baselineOK && r.baseline > 0
		r.baseP99 = evidence.Percentile(r.ix.Latencies(r.ix.BaselineStart, r.ix.FirstFault), 0.99)
	}

	rep := &Report{
		Version: ReportVersion, Scenario: sc.Name, Seed: in.Seed, Backend: in.Backend, Expect: r.expect, Options: o.json(),
		Timings: Timings{
			LoadStart: Sec(r.ix.LoadStart), BaselineStart: Sec(r.ix.BaselineStart), FirstFault: Sec(r.ix.FirstFault),
			LoadEnd: Sec(r.ix.LoadEnd), End: Sec(r.ix.End),
		},
		Problems: r.ix.Problems, Budgets: r.budgets,
	}
	if !in.Started.IsZero() {
		st := in.Started.UTC()
		rep.Started = &st
	}
	rep.Faults = r.faultInfos()
	tp, recov := r.throughput()
	rep.Checks = []Result{r.acknowledged(), r.money(), r.kafka(), r.replicas(), r.quorum(), r.failover(), tp, r.faultEffect(rep.Faults)}
	if why := r.ix.Observing(); why != "" {
		rep.Observing = why
		// Without load only the probes' samples are evidence: every check
		// built on transfers, messages and the final state is skipped,
		// saying why, and quorum alone is judged.
		for i, c := range rep.Checks {
			if c.ID != CheckQuorum {
				rep.Checks[i] = r.skipped(c, why)
			}
		}
		recov = make([]faultTP, len(rep.Faults))
	}
	for i := range rep.Faults {
		rep.Faults[i].ThroughputRatio = recov[i].ratio
		rep.Faults[i].Recovery = recov[i].recovery
		rep.Faults[i].Failover = r.fo[i]
		st := Pass
		for _, c := range rep.Checks {
			st = worst(st, c.PerFault[i].Status)
		}
		rep.Faults[i].Status = st
	}
	rep.Phases = r.phases()
	rep.Series = r.seriesJSON()
	score(rep)
	return rep, nil
}

// skipped is check c not judged, for why: SKIP, for every fault too.
func (r *run) skipped(c Result, why string) Result {
	b := r.newResult(c.ID, c.Title, c.Class)
	b.res.Status = Skip
	for i := range b.fst {
		b.fst[i] = Skip
		b.fmsg[i] = "not judged: " + why
	}
	return b.finish("not judged: " + why)
}

// score sets the verdict and exit code: a safety FAIL gives 3; else a
// liveness FAIL gives 4; else any UNKNOWN makes the run inconclusive, which
// also gives 4 (safety and liveness were not shown to hold, and nightly CI
// must not read that as a pass); else 0.
func score(rep *Report) {
	var safety, liveness, unknown []string
	for _, c := range rep.Checks {
		line := c.Title + ": " + c.Summary
		switch {
		case c.Status == Fail && c.Class == Safety:
			safety = append(safety, line)
		case c.Status == Fail:
			liveness = append(liveness, line)
		case c.Status == Unknown:
			unknown = append(unknown, line)
		}
	}
	switch {
	case len(safety) > 0:
		rep.Verdict, rep.ExitCode = Fail, ExitSafety
		rep.Why = append([]string{"SAFETY VIOLATED — data was lost or money not conserved:"}, safety...)
		if len(liveness) > 0 {
			rep.Why = append(rep.Why, "Also liveness:")
			rep.Why = append(rep.Why, liveness...)
		}
	case len(liveness) > 0:
		rep.Verdict, rep.ExitCode = Fail, ExitLiveness
		rep.Why = append([]string{"LIVENESS VIOLATED — no data lost, but quorum, failover time, throughput, recovery or fault effect not as expected:"}, liveness...)
	case len(unknown) > 0:
		rep.Verdict, rep.ExitCode = Unknown, ExitLiveness
		rep.Why = append([]string{"INCONCLUSIVE — nothing failed, but some evidence is missing, so the run cannot pass:"}, unknown...)
	default:
		rep.Verdict, rep.ExitCode = Pass, ExitPass
		rep.Why = []string{"Every check passed."}
		for _, c := range rep.Checks {
			rep.Why = append(rep.Why, c.Title+": "+c.Summary)
		}
		return
	}
	if len(unknown) > 0 && (len(safety) > 0 || len(liveness) > 0) {
		rep.Why = append(rep.Why, "Inconclusive:")
		rep.Why = append(rep.Why, unknown...)
	}
}

// builder accumulates one check's findings.
type builder struct {
	r      *run
	res    Result
	counts map[string]int64
	// per-fault: worst status and first decisive message.
	fst  []Status
	fmsg []string
}

func (r *run) newResult(id, title string, class Class) *builder {
	b := &builder{r: r, res: Result{ID: id, Title: title, Class: class, Status: Pass}, counts: map[string]int64{}}
	for _, f := range r.ix.Faults {
		st := Pass
		if !f.Injected {
			st = Skip
		}
		b.fst = append(b.fst, st)
		b.fmsg = append(b.fmsg, "")
	}
	return b
}

// add records a finding; fail and unknown findings set the status of the
// check and of the fault they are blamed on.
func (b *builder) add(f Finding) {
	b.res.Findings = append(b.res.Findings, f)
	var st Status
	switch f.Severity {
	case SevFail:
		st = Fail
	case SevUnknown:
		st = Unknown
	default:
		return
	}
	b.res.Status = worst(b.res.Status, st)
	if f.Fault != nil {
		i := *f.Fault
		if st.rank() > b.fst[i].rank() || b.fmsg[i] == "" {
			b.fmsg[i] = f.Message
		}
		b.fst[i] = worst(b.fst[i], st)
	}
}

// faultSummary sets a fault's summary when no finding decided it.
func (b *builder) faultSummary(i int, msg string) {
	if b.fmsg[i] == "" {
		b.fmsg[i] = msg
	}
}

// faultStatus forces a fault's status (with its reason).
func (b *builder) faultStatus(i int, st Status, msg string) {
	if st.rank() >= b.fst[i].rank() {
		b.fst[i], b.fmsg[i] = st, msg
	}
}

func (b *builder) finish(summary string) Result {
	b.res.Summary = summary
	if len(b.counts) > 0 {
		b.res.Counts = b.counts
	}
	for i := range b.fst {
		msg := b.fmsg[i]
		if msg == "" {
			switch b.fst[i] {
			case Skip:
				msg = "fault was never injected"
			default:
				msg = "nothing attributed to this fault"
			}
		}
		b.res.PerFault = append(b.res.PerFault, FaultStatus{Fault: i, Status: b.fst[i], Summary: msg})
	}
	if b.res.PerFault == nil {
		b.res.PerFault = []FaultStatus{}
	}
	return b.res
}

// ids sorts and caps a list of ids for a finding.
func (r *run) ids(list []string) ([]string, int) {
	s := slices.Clone(list)
	slices.Sort(s)
	if len(s) > r.o.MaxIDs {
		return s[:r.o.MaxIDs], len(s) - r.o.MaxIDs
	}
	return s, 0
}

// blame returns the fault index to blame an event at t on, or nil.
func (r *run) blame(t time.Duration) *int {
	i := r.ix.Blame(t, r.o.SettleAfterRecover)
	if i < 0 {
		return nil
	}
	return &i
}

// weakened is why fault *i went in before the system was back at full
// strength ("" when it was, or i is nil): its liveness cannot be judged
// against analyze's prediction, which assumes every member back.
func (r *run) weakened(i *int) string {
	if i == nil || *i < 0 || *i >= len(r.ix.Faults) || r.ix.Faults[*i].Weakened == "" {
		return ""
	}
	return fmt.Sprintf("fault %d went in before the system was back at full strength (%s), so analyze's prediction does not apply", *i+1, r.ix.Faults[*i].Weakened)
}

// grouped adds one finding per fault (and one for unattributed) listing ids.
func (b *builder) grouped(sev string, ids map[string]time.Duration, what func(n int, fault string) string) {
	groups := map[int][]string{}
	for id, t := range ids {
		k := -1
		if p := b.r.blame(t); p != nil {
			k = *p
		}
		groups[k] = append(groups[k], id)
	}
	keys := make([]int, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		list, more := b.r.ids(groups[k])
		f := Finding{Severity: sev, IDs: list, MoreIDs: more}
		fault := "outside any fault window"
		if k >= 0 {
			kk := k
			f.Fault = &kk
			fault = "during fault " + strconv.Itoa(k+1) + " (" + b.r.faultNames[k] + ")"
		}
		f.Message = what(len(groups[k]), fault)
		b.add(f)
	}
}

// readError returns why part of the final state is unknown, or "".
func (r *run) readError(part string) string {
	if r.in.Final == nil {
		if r.in.FinalError != "" {
			return "final state not read: " + r.in.FinalError
		}
		return "final state not read"
	}
	for k, v := range r.in.Final.ReadErrors {
		if k == part {
			return part + " unreadable: " + v
		}
	}
	return ""
}

// serviceReadError returns the read error for a part of one service.
func (r *run) serviceReadError(part, service string) string {
	if r.in.Final == nil {
		return ""
	}
	if v, ok := r.in.Final.ReadErrors[part+"/"+service]; ok {
		return part + " of " + service + " unreadable: " + v
	}
	return ""
}

// faultInfos describes the faults with their single-fault predictions.
func (r *run) faultInfos() []FaultInfo {
	out := []FaultInfo{}
	for _, f := range r.ix.Faults {
		fi := FaultInfo{Index: f.Index, Name: f.Name(), Action: f.Action, Target: f.Target, Injected: f.Injected,
			InjectAt: Sec(f.Inject), Recovered: f.Recovered, RecoverAt: Sec(f.Recover), Predicted: []ServicePrediction{},
			InjectLate: Sec(f.InjectLate), RecoverLate: Sec(f.RecoverLate)}
		if f.Planned != nil {
			at := Sec(f.Planned.At.D())
			fi.PlannedAt = &at
			if f.Planned.For != nil {
				d := Sec(f.Planned.For.D())
				fi.PlannedFor = &d
			}
		}
		js := r.pred.at([]*evidence.Fault{f})
		for _, sv := range r.t.Services {
			j := js[sv.Index]
			fi.Predicted = append(fi.Predicted, ServicePrediction{Service: sv.Name, Verdict: j.Verdict.String(),
				MembersUp: int(j.MembersUp), Members: len(sv.Members), LossPossible: j.LossPossible})
		}
		out = append(out, fi)
	}
	return out
}

// phases cuts the run into warmup, baseline, each fault and the time after
// it, with load numbers and latency percentiles for each.
func (r *run) phases() []PhaseStats {
	ix := r.ix
	type span struct {
		name     string
		from, to time.Duration
	}
	spans := []span{{"warmup", ix.LoadStart, ix.BaselineStart}, {"baseline", ix.BaselineStart, ix.FirstFault}}
	var injected []*evidence.Fault
	for _, f := range ix.Faults {
		if f.Injected {
			injected = append(injected, f)
		}
	}
	slices.SortStableFunc(injected, func(a, b *evidence.Fault) int { return int(a.Inject - b.Inject) })
	end := max(ix.LoadEnd, ix.FirstFault)
	for k, f := range injected {
		name := fmt.Sprintf("fault %d: %s", slices.Index(ix.Faults, f)+1, f.Name())
		spans = append(spans, span{name, f.Inject, f.Recover})
		next := end
		if k+1 < len(injected) {
			next = injected[k+1].Inject
		}
		if f.Recover < next {
			spans = append(spans, span{fmt.Sprintf("after fault %d", slices.Index(ix.Faults, f)+1), f.Recover, next})
		}
	}
	var out []PhaseStats
	for _, s := range spans {
		if s.to <= s.from {
			continue
		}
		lat := ix.Latencies(s.from, s.to)
		rate, _ := r.series.Rate(s.from, s.to)
		ps := PhaseStats{Name: s.name, From: Sec(s.from), To: Sec(s.to), Throughput: round3(rate), Latencies: len(lat),
			OK: r.series.Sum(r.series.OK, s.from, s.to), Errors: ix.Failures(s.from, s.to),
			Dropped: r.series.Sum(r.series.Dropped, s.from, s.to)}
		if len(lat) > 0 {
			ps.P50, ps.P99, ps.Max = Sec(evidence.Percentile(lat, 0.5)), Sec(evidence.Percentile(lat, 0.99)), Sec(lat[len(lat)-1])
		}
		out = append(out, ps)
	}
	return out
}

func (r *run) seriesJSON() Series {
	s := r.series
	n := len(s.OK)
	sec := s.Bucket.Seconds()
	out := Series{Bucket: Sec(s.Bucket), Throughput: make(Values, n), Errors: make(Values, n), Dropped: make(Values, n),
		P50: make(Values, n), P99: make(Values, n), Baseline: round3(r.baseline)}
	for i := range n {
		out.Throughput[i] = float64(s.OK[i]) / sec
		out.Errors[i] = float64(s.Errors[i]) / sec
		out.Dropped[i] = float64(s.Dropped[i]) / sec
		out.P50[i], out.P99[i] = math.NaN(), math.NaN()
		if l := s.Latencies[i]; len(l) > 0 {
			out.P50[i] = evidence.Percentile(l, 0.5).Seconds()
			out.P99[i] = evidence.Percentile(l, 0.99).Seconds()
		}
	}
	out.Services = r.timelines()
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func pct(f float64) string { return strconv.FormatFloat(math.Round(f*1000)/10, 'f', -1, 64) + "%" }

func fmtDur(d time.Duration) string {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
