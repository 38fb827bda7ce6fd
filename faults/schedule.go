// Package faults schedules a scenario's faults: it resolves each fault's
// target (a service member chosen with the run's seed), injects it at its
// offset, heals it its duration after it actually went in, records both
// (with their lateness against the plan) in the history, and
// always recovers — at the normal end, on error and on cancellation.
package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Injector is what the scheduler needs of a lab (a lab.Lab satisfies it
// through an adapter in the runner).
type Injector interface {
	Inject(ctx context.Context, f Fault) (resolvedTarget string, err error)
	Recover(ctx context.Context, f Fault) error
}

// Settler is an Injector that can wait, after heals, until the system is
// back at full strength (health before each fault, as etcd's robustness
// tests check it): the scheduler asks it before an inject that follows a
// heal. It bounds its own wait and returns an error when the system is
// still weakened; the fault then goes in anyway, and the error is
// recorded.
type Settler interface {
	Settle(ctx context.Context) error
}

// Fault is one scheduled fault, realised: offsets from the end of warmup,
// and a concrete target (a member index chosen for service/NAME).
type Fault struct {
	Index int           `json:"index"`
	At    time.Duration `json:"at"`
	For   time.Duration `json:"for,omitempty"` // 0: until the end
	// Fault is what is injected: action, concrete target, latency.
	lab.Fault
}

// End returns when the plan heals the fault, or the run's end; the
// scheduler heals it For after its actual injection.
func (f Fault) End(runEnd time.Duration) time.Duration {
	if f.For == 0 {
		return runEnd
	}
	return f.At + f.For
}

// Plan realises a scenario's faults with a seed: a target service/NAME
// without a member gets a member drawn from the seed, so that replaying the
// saved plan (or the same seed) injects the same faults.
func Plan(sc *scenarios.Scenario, seed uint64) []Fault {
	r := rand.New(rand.NewPCG(seed, 0xfa017))
	replicas := map[string]int{}
	for _, sv := range sc.Services {
		replicas[sv.Name] = sv.ReplicaCount()
	}
	var out []Fault
	for i, f := range sc.Faults {
		tg, err := scenarios.ParseTarget(f.Target)
		target := f.Target
		if err == nil {
			target = tg.String()
			if tg.Kind == scenarios.TargetService && tg.Member == "" {
				target = fmt.Sprintf("service/%s/%d", tg.Name, r.IntN(max(1, replicas[tg.Name])))
			}
		}
		pf := Fault{Index: i, At: f.At.D(), For: f.For.D(), Fault: lab.Fault{Action: f.Action, Target: target, Delay: f.Delay.D(), Jitter: f.Jitter.D()}}
		if f.Loss != nil {
			pf.Loss = *f.Loss
		}
		out = append(out, pf)
	}
	slices.SortStableFunc(out, func(a, b Fault) int { return int(a.At - b.At) })
	return out
}

// Scheduler runs a plan against an injector.
type Scheduler struct {
	Log      *slog.Logger
	Injector Injector
	History  *history.Writer
	// Extend, when set, is told each time a late inject moves the run's
	// end (an offset from the scheduler's start), so that the load lasts
	// as long as the schedule does: while the inject waits to begin, and
	// once it went in. It is called with the Scheduler's lock held, so it must
	// not call the Scheduler.
	Extend func(runEnd time.Duration)

	mu       sync.Mutex
	active   []Fault
	realised []Realised
	end      time.Duration
}

// Realised is when a fault actually went in and out, as offsets from the
// scheduler's start, and how late against the plan (At, At+For). Healed
// is zero when it was healed only at the end (For 0, or past the run).
type Realised struct {
	Index       int           `json:"index"`
	Injected    time.Duration `json:"injected"`
	InjectLate  time.Duration `json:"injectLate"`
	Healed      time.Duration `json:"healed,omitempty"`
	RecoverLate time.Duration `json:"recoverLate,omitempty"`
}

// Realised returns the schedule as it happened so far, in inject order.
func (s *Scheduler) Realised() []Realised {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.realised)
}

// note records an inject (inject true) or a heal of fault i at offset t.
func (s *Scheduler) note(i int, inject bool, t, late time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inject {
		s.realised = append(s.realised, Realised{Index: i, Injected: t, InjectLate: late})
		return
	}
	for k := range s.realised {
		if s.realised[k].Index == i && s.realised[k].Healed == 0 {
			s.realised[k].Healed, s.realised[k].RecoverLate = t, late
		}
	}
}

// End returns the run's end as the schedule realised it, an offset from
// the scheduler's start: the planned end, moved by the latest inject.
func (s *Scheduler) End() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// Active returns the faults in place now.
func (s *Scheduler) Active() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.active)
}

// step is one scheduled inject or heal, at an offset from the start.
type step struct {
	at     time.Duration
	inject bool
	f      Fault
}

// insertStep keeps steps sorted by time, a heal before an inject at the
// same instant.
func insertStep(steps []step, st step) []step {
	i := slices.IndexFunc(steps, func(o step) bool {
		return o.at > st.at || (o.at == st.at && o.inject && !st.inject)
	})
	if i < 0 {
		return append(steps, st)
	}
	return slices.Insert(steps, i, st)
}

// Run applies plan, with offsets counted from start, until runEnd after
// start or ctx ends; every fault still in place is then recovered (with a
// fresh context, so that cancellation never leaves a fault behind). Each
// fault lasts its For from its actual injection: a late inject moves its
// heal with it rather than shortening the fault the plan describes.
//
// A heal runs beside the rest of the plan: healing a power-off waits for
// its members to restart (half a minute for a Kafka broker on a busy
// machine), and its lateness must not push the heals after it. The next
// inject, though, waits for every heal still restarting members: a fault
// that lands on a system still missing the members an earlier fault took
// is a double failure the scenario did not describe, and analyze's
// verdict for it would not apply (measured: Galera's member in dc1 had not
// rejoined 30 s after the rack's power came back on a busy machine, and
// the dc3 isolation then left one of three members: no primary). For the
// same reason a Settler injector is then asked to wait until the restarted
// members are back in service (measured: a Kafka broker restarted after a
// power-off was still out of the ISR of half its partitions when the next
// isolation came, and those partitions refused writes for the whole
// fault). These waits are slips, recorded and reported like any other.
//
// A slip never shortens what the plan describes: a fault that goes in late
// moves the run's end by as much, so that the fault and the time after it
// keep their planned length (measured on kind: a rack's heal took 76 s on
// a busy machine, the next fault went in 50 s late, and the run's planned
// end cut it to 20 s of its 30 s and left no time after it to see the
// recovery). The end moves while the late inject waits to begin too
// (hold), not only once it went in. Extend is told the new end.
func (s *Scheduler) Run(ctx context.Context, start time.Time, runEnd time.Duration, plan []Fault) error {
	s.mu.Lock()
	s.end = runEnd
	s.mu.Unlock()
	var steps []step
	for _, f := range plan {
		steps = insertStep(steps, step{f.At, true, f})
	}
	var (
		// sinceHeal: a heal ran since the last inject.
		sinceHeal bool
		heals     sync.WaitGroup
		errMu     sync.Mutex
		errs      []error
	)
	addErr := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	// After every heal has returned, errs has no other writer.
	finish := func() error {
		heals.Wait()
		errMu.Lock()
		defer errMu.Unlock()
		return errors.Join(errs...)
	}
	defer s.recoverAll()
	defer heals.Wait()
	for len(steps) > 0 {
		st := steps[0]
		steps = steps[1:]
		select {
		case <-ctx.Done():
			addErr(ctx.Err())
			return finish()
		case <-time.After(time.Until(start.Add(st.at))):
		}
		if !st.inject {
			sinceHeal = true
			heals.Go(func() {
				healed := time.Since(start)
				late := healed - (st.f.At + st.f.For)
				if err := s.recover(context.WithoutCancel(ctx), st.f, late); err != nil {
					addErr(err)
				}
				s.note(st.f.Index, false, healed, late)
			})
			continue
		}
		release := s.hold(start, st.f.At, runEnd)
		heals.Wait()
		if st, ok := s.Injector.(Settler); ok && sinceHeal {
			s.settle(ctx, st)
		}
		release()
		sinceHeal = false
		actual := time.Since(start)
		if err := s.inject(ctx, st.f, actual-st.f.At); err != nil {
			addErr(err)
			continue
		}
		s.note(st.f.Index, true, actual, actual-st.f.At)
		if late := actual - st.f.At; late > minExtend {
			s.extendTo(runEnd + late)
		}
		if heal := actual + st.f.For; st.f.For > 0 && heal < s.End() {
			steps = insertStep(steps, step{heal, false, st.f})
		}
	}
	// every inject has returned: the end moves no more
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(s.End()))):
	}
	return finish()
}

// hold keeps the run's end ahead of the clock while an inject due at
// offset at waits to begin (for a heal, for full strength): the end moves
// to runEnd plus the lateness so far plus holdLead, every holdEvery.
// Extending only once the inject has gone in is too late: a heal that
// blocks past the planned end lets the load end first, and the fault then
// goes in with no load to measure (seen on kind: a rack's members took
// 82 s to come back, the next fault went in 67 s late and the load had
// ended before it). The inject's own time is not lateness (a fault's For
// counts from its start), as before. release stops it.
func (s *Scheduler) hold(start time.Time, at, runEnd time.Duration) (release func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(holdEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if late := time.Since(start) - at; late > minExtend {
				s.extendTo(runEnd + late + holdLead)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// holdEvery and holdLead: how often hold moves the end, and how far
// ahead of the lateness (more than holdEvery, so that the load never
// reaches the end between two moves).
const (
	holdEvery = 250 * time.Millisecond
	holdLead  = time.Second
)

// extendTo moves the run's end to end if that is later, and tells Extend.
func (s *Scheduler) extendTo(end time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end <= s.end {
		return
	}
	s.end = end
	if s.Extend != nil {
		s.Extend(end)
	}
}

// minExtend is the lateness below which an inject does not move the
// run's end: a timer's and an inject's own jitter, not a slip.
const minExtend = 100 * time.Millisecond

// settle waits for st to report full strength, recording a failure to
// reach it (the next fault goes in regardless: the plan says when).
func (s *Scheduler) settle(ctx context.Context, st Settler) {
	var at time.Duration
	if s.History != nil {
		at = s.History.Since()
	}
	began := time.Now()
	err := st.Settle(ctx)
	if err == nil {
		if d := time.Since(began); d > time.Second {
			s.Log.Info("back at full strength before the next fault", "waited", d.Round(time.Millisecond))
		}
		return
	}
	s.Log.Warn("not back at full strength before the next fault", "waited", time.Since(began).Round(time.Millisecond), "err", err)
	s.record(history.Event{T: at, Took: time.Since(began), Type: history.Fault, Phase: "settle", Error: err.Error()})
}

// inject puts f in place; late is how long after its planned time.
func (s *Scheduler) inject(ctx context.Context, f Fault, late time.Duration) error {
	// Stamped when injecting starts: a power-off of several nodes takes a
	// few hundred ms, and the first node goes dark at the start of it.
	var at time.Duration
	if s.History != nil {
		at = s.History.Since()
	}
	began := time.Now()
	target, err := s.Injector.Inject(ctx, f)
	if target != "" {
		f.Target = target
	}
	ev := history.Event{T: at, Took: time.Since(began), Type: history.Fault, Phase: "inject", Action: f.Action, Target: f.Target, Late: late}
	if err != nil {
		ev.Error = err.Error()
	}
	s.record(ev)
	if err != nil {
		return fmt.Errorf("inject %s %s: %w", f.Action, f.Target, err)
	}
	s.mu.Lock()
	s.active = append(s.active, f)
	s.mu.Unlock()
	s.Log.Info("fault injected", "action", f.Action, "target", f.Target, "late", late)
	return nil
}

// recover heals f; late is how long after its planned heal (At+For), 0
// when it has none (healed at the end).
func (s *Scheduler) recover(ctx context.Context, f Fault, late time.Duration) error {
	s.mu.Lock()
	i := slices.IndexFunc(s.active, func(a Fault) bool { return a.Index == f.Index })
	if i < 0 {
		s.mu.Unlock()
		return nil
	}
	f = s.active[i]
	s.mu.Unlock()
	// The heal happens when recovery starts (power back, link up); what
	// follows — members restarting and rejoining — is the system recovering,
	// which the checks measure from this instant.
	var healedAt time.Duration
	if s.History != nil {
		healedAt = s.History.Since()
	}
	err := s.Injector.Recover(ctx, f)
	ev := history.Event{T: healedAt, Type: history.Fault, Phase: "recover", Action: f.Action, Target: f.Target, Late: late}
	if err != nil {
		ev.Error = err.Error()
	}
	s.record(ev)
	s.mu.Lock()
	s.active = slices.DeleteFunc(s.active, func(a Fault) bool { return a.Index == f.Index })
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("recover %s %s: %w", f.Action, f.Target, err)
	}
	s.Log.Info("fault recovered", "action", f.Action, "target", f.Target)
	return nil
}

// recoverAll heals whatever is still in place, newest first.
func (s *Scheduler) recoverAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, f := range slices.Backward(s.Active()) {
		if err := s.recover(ctx, f, 0); err != nil {
			s.Log.Error("recovering a fault failed; 'chaosloop heal' or 'chaosloop down' undoes it", "action", f.Action, "target", f.Target, "err", err)
		}
	}
}

// RecoverAll heals every fault the scheduler put in place.
func (s *Scheduler) RecoverAll() { s.recoverAll() }

func (s *Scheduler) record(e history.Event) {
	if s.History != nil {
		if err := s.History.Add(e); err != nil {
			s.Log.Error("history", "err", err)
		}
	}
}
