package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/chaosloop/chaosloop/lab"
)

// Heartbeat is how long a step may go without a line in a log before
// Steps says it is still running: a first install builds for minutes,
// and a CI log that stops for four minutes looks hung.
const Heartbeat = 30 * time.Second

// Steps shows the progress of named steps of long work (installing engines,
// starting services): spinners on a terminal; elsewhere (a CI log, a pipe)
// one timestamped line per change, and a "still ..." line for a step that
// has been quiet for a heartbeat.
type Steps struct {
	mu        sync.Mutex
	w         io.Writer
	start     time.Time
	p         *mpb.Progress
	bars      map[string]*stepBar
	open      map[string]*openStep // plain output: steps not yet ended
	heartbeat time.Duration
	stop      chan struct{}
	stopped   sync.WaitGroup
}

type openStep struct {
	stage, detail string
	since, last   time.Time // step started; last line written
}

type stepBar struct {
	bar   *mpb.Bar
	mu    sync.Mutex // the decorator reads stage from mpb's goroutine
	stage string
}

// NewSteps starts showing progress on w; times count from now.
func NewSteps(w io.Writer) *Steps { return NewStepsFrom(w, time.Now(), Heartbeat) }

// NewStepsFrom is NewSteps with times counted from start (a run's first
// line) and a heartbeat of its own (0: none).
func NewStepsFrom(w io.Writer, start time.Time, heartbeat time.Duration) *Steps {
	s := &Steps{w: w, start: start, bars: map[string]*stepBar{}, open: map[string]*openStep{}, heartbeat: heartbeat}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		s.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(1), mpb.WithRefreshRate(150*time.Millisecond))
		return s
	}
	if heartbeat > 0 {
		s.stop = make(chan struct{})
		s.stopped.Add(1)
		go s.beat()
	}
	return s
}

// ended reports whether stage ends a step.
func ended(stage string) bool { return stage == "done" || stage == "healthy" || stage == "failed" }

// Update moves step name to stage (with a detail); stage "done", "healthy"
// or "failed" ends the step.
func (s *Steps) Update(name, stage, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		s.line(name, stage, detail)
		now := time.Now()
		switch o := s.open[name]; {
		case ended(stage):
			delete(s.open, name)
		case o == nil:
			s.open[name] = &openStep{stage: stage, detail: detail, since: now, last: now}
		default:
			o.stage, o.detail, o.last = stage, detail, now
		}
		return
	}
	s.updateBar(name, stage, detail)
}

func (s *Steps) line(name, stage, detail string) {
	msg := stage
	if detail != "" {
		msg += ": " + detail
	}
	fmt.Fprintf(s.w, "[%6.1fs] %-24s %s\n", time.Since(s.start).Seconds(), name, msg)
}

// beat writes a "still ..." line for each step quiet for a heartbeat.
func (s *Steps) beat() {
	defer s.stopped.Done()
	t := time.NewTicker(s.heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			names := make([]string, 0, len(s.open))
			for n := range s.open {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				o := s.open[n]
				if now.Sub(o.last) >= s.heartbeat {
					s.line(n, "still "+o.stage, fmt.Sprintf("%s (for %s)", o.detail, now.Sub(o.since).Round(time.Second)))
					o.last = now
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *Steps) updateBar(name, stage, detail string) {
	b := s.bars[name]
	if b == nil {
		b = &stepBar{}
		b.bar = s.p.New(1, mpb.SpinnerStyle(),
			mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return b.stageText() })),
			mpb.BarFillerOnComplete("✓"),
		)
		s.bars[name] = b
	}
	text := stage
	if detail != "" {
		text += " (" + detail + ")"
	}
	b.mu.Lock()
	b.stage = text
	b.mu.Unlock()
	switch stage {
	case "done", "healthy":
		b.bar.SetCurrent(1)
	case "failed":
		b.bar.Abort(false)
	}
}

func (b *stepBar) stageText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stage
}

// Lab shows one step of a lab coming up (a provider's lab.Progress): the
// lab's own steps under "lab", a service's under its name.
func (s *Steps) Lab(p lab.Progress) {
	name := p.Service
	if name == "" {
		name = "lab"
	}
	detail := p.Detail
	if p.Err != nil {
		detail = p.Err.Error()
	}
	s.Update(name, p.Stage, detail)
}

// Close stops the heartbeat and waits for the display to settle.
func (s *Steps) Close() {
	if s.stop != nil {
		close(s.stop)
		s.stopped.Wait()
		s.stop = nil
	}
	if s.p == nil {
		return
	}
	s.mu.Lock()
	for _, b := range s.bars {
		if !b.bar.Completed() && !b.bar.Aborted() {
			b.bar.Abort(false)
		}
	}
	s.mu.Unlock()
	s.p.Wait()
}
