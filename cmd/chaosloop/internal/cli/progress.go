package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Steps shows the progress of named steps of long work (installing engines,
// starting services): spinners on a terminal, timestamped lines otherwise,
// so CI logs stay readable.
type Steps struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	p     *mpb.Progress
	bars  map[string]*stepBar
}

type stepBar struct {
	bar   *mpb.Bar
	mu    sync.Mutex // the decorator reads stage from mpb's goroutine
	stage string
}

// NewSteps starts showing progress on w.
func NewSteps(w io.Writer) *Steps {
	s := &Steps{w: w, start: time.Now(), bars: map[string]*stepBar{}}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		s.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(1), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return s
}

// Update moves step name to stage (with a detail); stage "done" or
// "failed" ends the step.
func (s *Steps) Update(name, stage, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		msg := stage
		if detail != "" {
			msg += ": " + detail
		}
		fmt.Fprintf(s.w, "[%6.1fs] %-24s %s\n", time.Since(s.start).Seconds(), name, msg)
		return
	}
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

// Close waits for the display to settle.
func (s *Steps) Close() {
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
