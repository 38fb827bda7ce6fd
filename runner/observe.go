package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/reports/evidence"
)

// observe is a run on a lab whose services are not chaosloop's to load
// (lab.Capabilities.Observing: the adopter's own, in attach mode): no setup, handlers,
// load nor final state; the services are sampled throughout while the
// scenario's faults go in on schedule, as in a run with load, so that the
// quorum check compares what the probes saw with analyze. The scenario's
// load section gives the timeline only: warmup before the schedule starts,
// duration after it; its rate is not used.
func (w *work) observe(ctx context.Context, why string) error {
	if err := w.h.Add(history.Event{Type: history.PhaseChange, Phase: evidence.PhaseObserve, Detail: why}); err != nil {
		return err
	}
	services := make([]string, 0, len(w.o.Scenario.Services))
	for _, sv := range w.o.Scenario.Services {
		services = append(services, sv.Name)
	}
	smp := startSampler(ctx, w.lb, w.h, services)
	defer smp.Stop()

	ld := w.o.Scenario.Load
	w.event("warmup", "")
	w.phase("observe", fmt.Sprintf("no load (%s); sampling every service for %s before the first fault", why, ld.Warmup.D()))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(ld.Warmup.D()):
	}
	w.event("baseline", "")
	w.phase("faults", fmt.Sprintf("%d faults over %s, the services sampled throughout", len(w.plan), ld.Duration.D()))
	sched := &faults.Scheduler{Log: w.o.Log, Injector: &labInjector{lb: w.lb, log: w.o.Log}, History: w.h}
	schedCtx, stopped := w.guard(ctx)
	schedErr := sched.Run(schedCtx, time.Now(), ld.Duration.D(), w.plan)
	w.endSchedule(sched)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := stopped(); err != nil {
		// the lab recovered every fault; the run is judged on what it saw
		schedErr = err
	}
	w.converge(ctx)
	smp.Stop()
	w.event("check", "")
	return schedErr
}

// guard returns the schedule's context, which a Guarded lab's stop
// condition ends (recorded in the history as the phase "stopped"), and a
// func that says, once the schedule is over, why it was stopped (nil: it
// was not).
func (w *work) guard(ctx context.Context) (context.Context, func() error) {
	g, ok := w.lb.(lab.Guarded)
	if !ok {
		return ctx, func() error { return nil }
	}
	sctx, cancel := context.WithCancel(ctx)
	var stop error
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case stop = <-g.Stopped():
			w.o.Log.Warn("run stopped", "err", stop)
			w.phase("stopped", stop.Error())
			if err := w.h.Add(history.Event{Type: history.PhaseChange, Phase: "stopped", Error: stop.Error()}); err != nil {
				w.o.Log.Error("history", "err", err)
			}
			cancel()
		case <-sctx.Done():
		}
	}()
	return sctx, func() error {
		cancel()
		<-done
		return stop
	}
}
