// Package evidence indexes a run's history (history events) into what
// the checkers and the report need: operations with their invocation and
// completion, fault windows matched to the scenario's faults, per-service
// samples, and the run's landmarks (load start, baseline, load end). It
// judges nothing; reports/checks does.
package evidence

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Op is one operation: an invocation and its completion, if any.
type Op struct {
	Kind string
	ID   string
	// Invoked is false for a completion whose invocation is not in the
	// history (its latency is unknown).
	Invoked bool
	Invoke  time.Duration
	// Outcome is history.OK, Fail or Info; an invocation without a
	// completion is Info (in flight when the history ended: unknown).
	Outcome string
	// Done is the completion time (zero when there was none).
	Done      time.Duration
	Completed bool
	// Inv and Comp are the raw events (Comp zero when not completed).
	Inv, Comp history.Event
}

// Latency is invoke→completion, when both are known.
func (o *Op) Latency() (time.Duration, bool) {
	if !o.Invoked || !o.Completed {
		return 0, false
	}
	return o.Done - o.Invoke, true
}

// Field returns the first non-empty value of a transfer field, preferring
// the completion (the runner may fill in details only there).
func (o *Op) Field(f func(history.Event) string) string {
	if v := f(o.Comp); v != "" {
		return v
	}
	return f(o.Inv)
}

// Fault is one fault window as it happened, matched to the scenario.
type Fault struct {
	// Index is the fault's position in the scenario's faults list, or -1
	// for a fault the history shows but the scenario does not list.
	Index  int
	Action string
	Target string
	// Planned is the scenario's entry (nil for Index -1).
	Planned *scenarios.Fault
	// Model is the fault for topology.State; ModelErr says why there is
	// none (an unparseable target).
	Model    topology.Fault
	ModelErr error
	// Injected is false when the scenario lists the fault but the history
	// has no inject event for it.
	Injected bool
	Inject   time.Duration
	// Recovered is false when no recover event followed (the fault lasted
	// to the end of the history); Recover is then the history's end.
	Recovered bool
	Recover   time.Duration
	// InjectLate and RecoverLate: actual − planned, as the scheduler
	// recorded them (zero in histories from before it did).
	InjectLate, RecoverLate time.Duration
	// Weakened says why the system was not back at full strength when the
	// fault went in (the scheduler's settle event before it), "" when it
	// was or the history does not say.
	Weakened string
}

// Name is "action target", e.g. "power-off rack/dc1/r1".
func (f *Fault) Name() string { return f.Action + " " + f.Target }

// ActiveAt reports whether the fault was in effect at t.
func (f *Fault) ActiveAt(t time.Duration) bool {
	return f.Injected && t >= f.Inject && t < f.Recover
}

// Sample is one observation of a service.
type Sample struct {
	// T is when the probe started and End when it answered: the state is
	// the service's at some moment in between.
	T, End  time.Duration
	Service string
	// Valid is false when the observation carries no state (an error or
	// a timeout).
	Valid bool
	// Timeout: the probe ran out of time; the state is unknown and must
	// not be compared.
	Timeout   bool
	Observed  topology.Verdict
	MembersUp int
	Error     string
}

// Index is a history organised for checking.
type Index struct {
	// Ops by kind (history.OpTransfer, ...), in invocation order.
	Ops map[string][]*Op
	// Consumed: every OpConsume event.
	Consumed []history.Event
	// Dropped arrival times.
	Dropped []time.Duration
	// Faults: the scenario's faults in its order, then unplanned ones.
	Faults []*Fault
	// Samples per service, in time order.
	Samples map[string][]Sample
	// Phases: the run's phase changes.
	Phases []history.Event

	// Landmarks (times since the run started).
	End           time.Duration // last event
	LoadStart     time.Duration // first transfer invocation
	LoadEnd       time.Duration // last transfer invocation or dropped arrival
	BaselineStart time.Duration // end of warmup
	FirstFault    time.Duration // first inject (LoadEnd when none)
	HasLoad       bool

	// Problems: oddities of the history itself (completions without
	// invocation, recovers without inject), for the report.
	Problems []string
}

// Build indexes events (in any order; they are sorted stably by time) for a
// defaulted scenario.
func Build(events []history.Event, sc *scenarios.Scenario) *Index {
	ev := slices.Clone(events)
	slices.SortStableFunc(ev, func(a, b history.Event) int { return cmp.Compare(a.T, b.T) })
	ix := &Index{Ops: map[string][]*Op{}, Samples: map[string][]Sample{}}

	open := map[string][]*Op{} // kind+id → invocations not yet completed
	var injects []history.Event
	var recovers, settles []history.Event
	for _, e := range ev {
		ix.End = max(ix.End, e.T)
		switch e.Type {
		case history.Invoke:
			op := &Op{Kind: e.Op, ID: e.ID, Invoked: true, Invoke: e.T, Outcome: history.Info, Inv: e}
			ix.Ops[e.Op] = append(ix.Ops[e.Op], op)
			if e.ID != "" {
				k := e.Op + "\x00" + e.ID
				open[k] = append(open[k], op)
			}
			if e.Op == history.OpTransfer || e.Op == history.OpBulk {
				if !ix.HasLoad {
					ix.LoadStart, ix.HasLoad = e.T, true
				}
				ix.LoadEnd = max(ix.LoadEnd, e.T)
			}
		case history.OK, history.Fail, history.Info:
			if e.Op == history.OpConsume {
				ix.Consumed = append(ix.Consumed, e)
				continue
			}
			k := e.Op + "\x00" + e.ID
			var op *Op
			if q := open[k]; e.ID != "" && len(q) > 0 {
				op, open[k] = q[0], q[1:]
			} else {
				// A completion with no invocation (e.g. a produce logged
				// only once acknowledged): an op of its own.
				op = &Op{Kind: e.Op, ID: e.ID}
				ix.Ops[e.Op] = append(ix.Ops[e.Op], op)
				if e.Op == history.OpTransfer {
					ix.Problems = append(ix.Problems, fmt.Sprintf("%s %s completed (%s) at %s without an invocation", e.Op, e.ID, e.Type, fmtT(e.T)))
				}
			}
			op.Outcome, op.Done, op.Completed, op.Comp = e.Type, e.T, true, e
		case history.Dropped:
			ix.Dropped = append(ix.Dropped, e.T)
			if !ix.HasLoad {
				ix.LoadStart, ix.HasLoad = e.T, true
			}
			ix.LoadEnd = max(ix.LoadEnd, e.T)
		case history.Fault:
			switch e.Phase {
			case "inject":
				injects = append(injects, e)
			case "recover":
				recovers = append(recovers, e)
			case "settle":
				settles = append(settles, e)
			default:
				ix.Problems = append(ix.Problems, fmt.Sprintf("fault event at %s with unknown phase %q", fmtT(e.T), e.Phase))
			}
		case history.Sample:
			ix.Samples[e.Service] = append(ix.Samples[e.Service], sample(e))
		case history.PhaseChange:
			ix.Phases = append(ix.Phases, e)
		}
	}
	ix.matchFaults(sc, injects, recovers)
	ix.matchSettles(settles)
	ix.BaselineStart = ix.baselineStart(sc)
	ix.FirstFault = -1
	for _, f := range ix.Faults {
		if f.Injected && (ix.FirstFault < 0 || f.Inject < ix.FirstFault) {
			ix.FirstFault = f.Inject
		}
	}
	if ix.FirstFault < 0 {
		ix.FirstFault = ix.LoadEnd
	}
	return ix
}

// sample reads an observation. Writable, when given, overrides a state
// that claims writes work: what the probe saw wins over what it inferred.
func sample(e history.Event) Sample {
	s := Sample{T: e.T, End: e.T + max(e.Took, 0), Service: e.Service, MembersUp: e.MembersUp, Error: e.Error, Timeout: e.Timeout}
	if e.Timeout {
		return s
	}
	if v, err := topology.ParseVerdict(e.Observed); err == nil {
		s.Observed, s.Valid = v, true
	} else if e.Writable != nil {
		s.Observed, s.Valid = topology.Degraded, true
		if e.MembersUp == 0 && !*e.Writable {
			s.Observed = topology.ReadOnly
		}
	}
	if s.Valid && e.Writable != nil && !*e.Writable && s.Observed < topology.ReadOnly {
		s.Observed = topology.ReadOnly
	}
	return s
}

// matchSettles marks the fault injected next after each settle event as
// having gone in on a weakened system.
func (ix *Index) matchSettles(settles []history.Event) {
	for _, e := range settles {
		var next *Fault
		for _, f := range ix.Faults {
			if f.Injected && f.Inject >= e.T && (next == nil || f.Inject < next.Inject) {
				next = f
			}
		}
		if next != nil {
			next.Weakened = e.Error
		}
	}
}

// matchFaults pairs inject events with the scenario's faults (same action,
// same target kind and name, in order) and recover events with injects.
func (ix *Index) matchFaults(sc *scenarios.Scenario, injects, recovers []history.Event) {
	var planned []*Fault
	if sc != nil {
		for i := range sc.Faults {
			pf := &sc.Faults[i]
			f := &Fault{Index: i, Action: pf.Action, Target: pf.Target, Planned: pf}
			f.setModel()
			planned = append(planned, f)
		}
	}
	for _, e := range injects {
		var f *Fault
		for _, p := range planned {
			if !p.Injected && p.Action == e.Action && sameTarget(p.Target, e.Target) {
				f = p
				break
			}
		}
		if f == nil {
			f = &Fault{Index: -1, Action: e.Action, Target: e.Target}
			f.setModel()
			planned = append(planned, f)
			ix.Problems = append(ix.Problems, fmt.Sprintf("fault %s %s injected at %s is not in the scenario", e.Action, e.Target, fmtT(e.T)))
		}
		// The history's target may be more precise (a resolved leader).
		f.Target, f.Injected, f.Inject, f.InjectLate = e.Target, true, e.T, e.Late
		f.setModel()
	}
	for _, e := range recovers {
		var f *Fault
		for _, p := range planned {
			if p.Injected && !p.Recovered && p.Inject <= e.T && p.Action == e.Action && sameTarget(p.Target, e.Target) {
				f = p
				break
			}
		}
		if f == nil {
			ix.Problems = append(ix.Problems, fmt.Sprintf("recover of %s %s at %s matches no injected fault", e.Action, e.Target, fmtT(e.T)))
			continue
		}
		f.Recovered, f.Recover, f.RecoverLate = true, e.T, e.Late
	}
	for _, f := range planned {
		if f.Injected && !f.Recovered {
			f.Recover = ix.End
		}
	}
	// Scenario order first (it is the order people read), then unplanned
	// faults by injection time.
	slices.SortStableFunc(planned, func(a, b *Fault) int {
		if (a.Index < 0) != (b.Index < 0) {
			if a.Index < 0 {
				return 1
			}
			return -1
		}
		if a.Index >= 0 {
			return cmp.Compare(a.Index, b.Index)
		}
		return cmp.Compare(a.Inject, b.Inject)
	})
	ix.Faults = planned
}

func (f *Fault) setModel() {
	tg, err := scenarios.ParseTarget(f.Target)
	f.Model, f.ModelErr = topology.Fault{Action: f.Action, Target: tg}, err
}

// sameTarget compares targets by kind and name, ignoring a service
// member the scenario left to be chosen at run time.
func sameTarget(a, b string) bool {
	if a == b {
		return true
	}
	ta, ea := scenarios.ParseTarget(a)
	tb, eb := scenarios.ParseTarget(b)
	if ea != nil || eb != nil {
		return false
	}
	if ta.Kind == scenarios.TargetService && tb.Kind == scenarios.TargetService {
		return ta.Name == tb.Name && (ta.Member == "" || ta.Member == "leader" || tb.Member == "" || tb.Member == "leader" || ta.Member == tb.Member)
	}
	return ta.String() == tb.String()
}

// baselineStart is where the baseline begins: the first phase change
// named "baseline" (or the first after "warmup"); without phase events, the
// scenario's warmup after the first arrival.
func (ix *Index) baselineStart(sc *scenarios.Scenario) time.Duration {
	sawWarmup := false
	for _, p := range ix.Phases {
		switch {
		case p.Phase == "baseline":
			return p.T
		case p.Phase == "warmup":
			sawWarmup = true
		case sawWarmup:
			return p.T
		}
	}
	var warm time.Duration
	if sc != nil && sc.Load != nil {
		warm = sc.Load.Warmup.D()
	}
	return ix.LoadStart + warm
}

// PhaseObserve is the phase change a run that drives no load records
// first (attach mode: the services are the adopter's own), its Detail
// saying why: the checks then judge only what probes observe.
const PhaseObserve = "observe"

// Observing returns why the run only observed (the PhaseObserve event's
// Detail), or "" for a run that drove load.
func (ix *Index) Observing() string {
	for _, p := range ix.Phases {
		if p.Phase == PhaseObserve {
			if p.Detail == "" {
				return "the run drove no load"
			}
			return p.Detail
		}
	}
	return ""
}

// Active returns the faults in effect at t.
func (ix *Index) Active(t time.Duration) []*Fault {
	var out []*Fault
	for _, f := range ix.Faults {
		if f.ActiveAt(t) {
			out = append(out, f)
		}
	}
	return out
}

// Changes returns every inject and recover time, sorted, without repeats.
func (ix *Index) Changes() []time.Duration {
	var ts []time.Duration
	for _, f := range ix.Faults {
		if f.Injected {
			ts = append(ts, f.Inject)
			if f.Recovered {
				ts = append(ts, f.Recover)
			}
		}
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// Window is the stretch of time a fault can be blamed for: from its
// injection until settle after its recovery, cut short by the next
// injection.
func (ix *Index) Window(f *Fault, settle time.Duration) (from, to time.Duration) {
	if !f.Injected {
		return 0, 0
	}
	from, to = f.Inject, f.Recover+settle
	for _, g := range ix.Faults {
		if g != f && g.Injected && g.Inject > f.Inject && g.Inject < to {
			to = max(g.Inject, f.Recover)
		}
	}
	return from, min(to, max(ix.End, f.Recover))
}

// Blame returns the index (into Faults) of the fault whose window holds t,
// or -1. With overlapping faults the latest injected wins.
func (ix *Index) Blame(t time.Duration, settle time.Duration) int {
	best, bestInject := -1, time.Duration(-1)
	for i, f := range ix.Faults {
		from, to := ix.Window(f, settle)
		if f.Injected && t >= from && t <= to && f.Inject > bestInject {
			best, bestInject = i, f.Inject
		}
	}
	return best
}

func fmtT(t time.Duration) string { return t.Round(time.Millisecond).String() }
