// Package arrival is an open-loop arrival-rate executor, like k6's
// constant-arrival-rate: arrivals come at a fixed rate whatever the system
// under test does, each taken by a free virtual user (VU) from a bounded
// pool. An arrival that finds no free VU is dropped — counted, never queued —
// so a stalled system shows as drops and lost throughput instead of a
// backlog that hides the fault.
package arrival

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Config of one run.
type Config struct {
	// Rate is arrivals per second.
	Rate float64
	// Duration of the arrivals (in-flight work then completes).
	Duration time.Duration
	// Extended, when set, is asked before each arrival past Duration: the
	// arrivals go on while it says they may (a run whose fault schedule
	// slipped keeps its planned tail).
	Extended func() time.Duration
	// VUs bounds the work in flight (k6's maxVUs); all are started up
	// front, so none is created under load.
	VUs int
}

// Stats are live counters, safe to read while the executor runs.
type Stats struct {
	Arrivals atomic.Int64 // arrivals so far (started + dropped)
	Started  atomic.Int64
	Dropped  atomic.Int64
	InFlight atomic.Int64
}

// Run schedules arrival i at start + i/Rate for i = 0, 1, ... while within
// Duration (or Extended). For each it calls plan(i) — sequentially, in order, also for
// arrivals that will be dropped, so that a seeded plan is the same whatever
// the timing — and hands the item to a free VU, which calls work; with no
// free VU it calls dropped instead. Run returns when every arrival was
// handed out or dropped and all work has returned, or when ctx ends (work
// sees ctx and should return promptly then).
func Run[T any](ctx context.Context, cfg Config, st *Stats, plan func(i int64) T, work func(ctx context.Context, vu int, item T), dropped func(item T)) error {
	if cfg.Rate <= 0 || cfg.VUs <= 0 {
		return errors.New("arrival: rate and VUs must be positive")
	}
	if st == nil {
		st = &Stats{}
	}
	jobs := make(chan T) // unbuffered: a send succeeds only when a VU waits
	var wg, ready sync.WaitGroup
	ready.Add(cfg.VUs)
	for v := range cfg.VUs {
		wg.Go(func() {
			ready.Done()
			for item := range jobs {
				work(ctx, v, item)
				st.InFlight.Add(-1)
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	// Every VU running before the first arrival, so none is dropped for a
	// VU that was merely not started yet.
	ready.Wait()
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := int64(0); ; i++ {
		off := time.Duration(float64(i) * float64(time.Second) / cfg.Rate)
		if off >= cfg.Duration && (cfg.Extended == nil || off >= cfg.Extended()) {
			return nil
		}
		// Behind schedule (a slow plan, GC): start late arrivals at once
		// rather than skip them; a missing VU is what drops an arrival.
		if d := time.Until(start.Add(off)); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		item := plan(i)
		st.Arrivals.Add(1)
		st.InFlight.Add(1)
		select {
		case jobs <- item:
			st.Started.Add(1)
		default:
			st.InFlight.Add(-1)
			st.Dropped.Add(1)
			dropped(item)
		}
	}
}
