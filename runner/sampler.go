package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
)

// SampleInterval: each service is observed at least twice a second.
const SampleInterval = 400 * time.Millisecond

// sampler observes every service of a lab on its own ticker and records a
// sample event each time, until stopped.
type sampler struct {
	obs  lab.Observer
	h    *history.Writer
	wg   sync.WaitGroup
	stop context.CancelFunc
}

func startSampler(ctx context.Context, obs lab.Observer, h *history.Writer, services []string) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{obs: obs, h: h, stop: cancel}
	for _, name := range services {
		s.wg.Add(1)
		go s.loop(ctx, name)
	}
	return s
}

// ProbeTimeout bounds one observation. Probes of a service under a fault
// can take seconds (a frozen broker, a partitioned member), longer than the
// interval, so several run at once and each is recorded when it ends,
// stamped with the time it started.
const ProbeTimeout = 5 * time.Second

func (s *sampler) loop(ctx context.Context, name string) {
	defer s.wg.Done()
	t := time.NewTicker(SampleInterval)
	defer t.Stop()
	slots := make(chan struct{}, int(ProbeTimeout/SampleInterval)+1)
	var probes sync.WaitGroup
	defer probes.Wait()
	for {
		select {
		case slots <- struct{}{}:
			probes.Add(1)
			go func() {
				defer probes.Done()
				defer func() { <-slots }()
				s.probe(ctx, name)
			}()
		default:
			// Every slot busy: the engines answer slower than ProbeTimeout
			// allows; the gap shows in the history.
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe records one observation; a write the history fails is counted
// there (history.Writer.Lost).
func (s *sampler) probe(ctx context.Context, name string) {
	at := s.h.Since()
	pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	si, err := s.obs.ServiceStatus(pctx, name)
	cancel()
	if ctx.Err() != nil {
		return
	}
	ev := sampleEvent(si, err)
	ev.T, ev.Took, ev.Service = at, s.h.Since()-at, name
	_ = s.h.Add(ev)
}

// sampleEvent records one probe: its state, or a timed-out probe (unknown,
// with the members that ran out of time), or the error.
func sampleEvent(si lab.ServiceStatus, err error) history.Event {
	ev := history.Event{Type: history.Sample}
	if err != nil {
		ev.Error, ev.Timeout = err.Error(), lab.IsTimeout(err)
		if ev.Timeout {
			ev.Observed = lab.Unknown
		}
		return ev
	}
	obs, up, w := lab.Observe(si)
	ev.Observed, ev.MembersUp = obs, up
	if obs != lab.Unknown {
		ev.Writable = &w
		if obs != "ok" {
			ev.Detail = unwell(si)
		}
		return ev
	}
	ev.Timeout = true
	var slow []string
	for _, m := range si.Members {
		if m.TimedOut {
			slow = append(slow, m.Name)
		}
	}
	ev.Detail = "probe timed out"
	if len(slow) > 0 {
		ev.Detail += ": " + strings.Join(slow, ", ")
	}
	return ev
}

// unwell is what a sample short of ok saw of the service: each member
// not healthy, with the probe's words, and the service's own error. It
// is kept in the history so that a one-sample blip can be explained from
// the run directory, not guessed at.
func unwell(si lab.ServiceStatus) string {
	var parts []string
	if si.Error != "" {
		parts = append(parts, si.Error)
	}
	for _, m := range si.Members {
		if m.Healthy {
			continue
		}
		state := "down"
		if m.Up {
			state = "up, not healthy"
		}
		part := fmt.Sprintf("%s on %s %s", m.Name, m.Node, state)
		if m.Role != "" {
			part += " (" + m.Role + ")"
		}
		if m.Detail != "" {
			part += ": " + m.Detail
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "every member healthy; writes refused"
	}
	return strings.Join(parts, "; ")
}

func (s *sampler) Stop() {
	s.stop()
	s.wg.Wait()
}
