package faults

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// fakeInjector records when faults go in and out; injecting slowIndex
// sleeps slow (a busy machine, a power-off of many nodes).
type fakeInjector struct {
	start     time.Time
	slowIndex int
	slow      time.Duration
	slowHeal  time.Duration // every Recover takes this long
	mu        sync.Mutex
	injected  map[int]time.Duration
	recovered map[int]time.Duration
}

// newFakeInjector is a fakeInjector from start whose injects of
// slowIndex (-1: none) take slow and whose heals take slowHeal.
func newFakeInjector(start time.Time, slowIndex int, slow, slowHeal time.Duration) *fakeInjector {
	return &fakeInjector{start: start, slowIndex: slowIndex, slow: slow, slowHeal: slowHeal,
		injected: map[int]time.Duration{}, recovered: map[int]time.Duration{}}
}

func (fi *fakeInjector) Inject(_ context.Context, f Fault) (string, error) {
	at := time.Since(fi.start)
	if f.Index == fi.slowIndex {
		time.Sleep(fi.slow)
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.injected[f.Index] = at
	return "", nil
}

func (fi *fakeInjector) Recover(_ context.Context, f Fault) error {
	time.Sleep(fi.slowHeal)
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.recovered[f.Index] = time.Since(fi.start)
	return nil
}

// A slow inject delays the next fault: that slip is recorded in the
// history (Late), and the delayed fault still lasts its For from its
// actual injection (not healed at its planned At+For, which would cut it
// short).
func TestSlipIsRecordedAndHealFollowsActualInject(t *testing.T) {
	start := time.Now()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	h, err := history.Create(path, start)
	require.NoError(t, err)
	fi := newFakeInjector(start, 0, 1500*time.Millisecond, 0)
	plan := []Fault{
		{Index: 0, At: 0, For: 3 * time.Second, Fault: lab.Fault{Action: "kill", Target: "service/a/0"}},
		{Index: 1, At: 200 * time.Millisecond, For: 500 * time.Millisecond, Fault: lab.Fault{Action: "kill", Target: "service/b/0"}},
	}
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi, History: h}
	require.NoError(t, s.Run(context.Background(), start, 3200*time.Millisecond, plan))
	require.NoError(t, h.Close())

	// Fault 1 went in at ~1.5 s, 1.3 s late; it healed 500 ms after that.
	require.GreaterOrEqual(t, fi.injected[1], 1500*time.Millisecond)
	lasted := fi.recovered[1] - fi.injected[1]
	require.GreaterOrEqual(t, lasted, 500*time.Millisecond)
	require.Less(t, lasted, 700*time.Millisecond, "healed For after the actual inject")

	evs, err := history.ReadFile(path)
	require.NoError(t, err)
	late := map[string]time.Duration{}
	for _, e := range evs {
		if e.Type == history.Fault {
			late[e.Phase+" "+e.Target] = e.Late
		}
	}
	require.Less(t, late["inject service/a/0"], 100*time.Millisecond)
	require.GreaterOrEqual(t, late["inject service/b/0"], 1300*time.Millisecond, "the slip is recorded")
	require.GreaterOrEqual(t, late["recover service/b/0"], 1300*time.Millisecond, "late against the plan's At+For")

	// The realised schedule, for plan.json.
	r := s.Realised()
	require.Len(t, r, 2)
	require.Equal(t, 1, r[1].Index)
	require.GreaterOrEqual(t, r[1].InjectLate, 1300*time.Millisecond)
	require.InDelta(t, float64(500*time.Millisecond), float64(r[1].Healed-r[1].Injected), float64(200*time.Millisecond))
}

// Negative control: without a slow inject nothing is late and the heal
// comes at At+For.
func TestOnTimeScheduleHasNoSlip(t *testing.T) {
	start := time.Now()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	h, err := history.Create(path, start)
	require.NoError(t, err)
	fi := newFakeInjector(start, -1, 0, 0)
	plan := []Fault{{Index: 0, At: 100 * time.Millisecond, For: 300 * time.Millisecond, Fault: lab.Fault{Action: "kill", Target: "service/a/0"}}}
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi, History: h}
	require.NoError(t, s.Run(context.Background(), start, 600*time.Millisecond, plan))
	require.NoError(t, h.Close())
	require.Less(t, fi.injected[0], 200*time.Millisecond)
	require.Less(t, fi.recovered[0], 500*time.Millisecond)
	evs, err := history.ReadFile(path)
	require.NoError(t, err)
	for _, e := range evs {
		require.Less(t, e.Late, 100*time.Millisecond, "%+v", e)
	}
}

// End to end: the slip the scheduler records reaches the report as a
// warning finding on the late fault, with its lateness on the fault.
func TestSlipIsReported(t *testing.T) {
	sc, err := scenarios.Parse("../scenarios/quickstart.yaml")
	require.NoError(t, err)
	sc.Faults[0].At = &scenarios.Duration{Duration: 0}
	sc.Faults[0].For = &scenarios.Duration{Duration: 3 * time.Second}
	sc.Faults[1].At = &scenarios.Duration{Duration: 200 * time.Millisecond}
	sc.Faults[1].For = &scenarios.Duration{Duration: 500 * time.Millisecond}
	start := time.Now()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	h, err := history.Create(path, start)
	require.NoError(t, err)
	fi := newFakeInjector(start, 0, 1500*time.Millisecond, 0)
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi, History: h}
	require.NoError(t, s.Run(context.Background(), start, 3200*time.Millisecond, Plan(sc, 1)))
	require.NoError(t, h.Close())
	evs, err := history.ReadFile(path)
	require.NoError(t, err)

	rep, err := checks.Run(checks.Input{Scenario: sc, Events: evs}, checks.Options{})
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep.Faults[1].InjectLate.D(), 1300*time.Millisecond)
	require.Less(t, rep.Faults[0].InjectLate.D(), 100*time.Millisecond)
	lasted := rep.Faults[1].RecoverAt.D() - rep.Faults[1].InjectAt.D()
	require.InDelta(t, float64(500*time.Millisecond), float64(lasted), float64(150*time.Millisecond), "healed For after the actual inject")
	var slips []string
	for _, f := range rep.Check(checks.CheckFaultEffect).Findings {
		if f.Severity == checks.SevWarning && strings.Contains(f.Message, "scheduler slip") {
			require.Equal(t, 1, *f.Fault)
			slips = append(slips, f.Message)
		}
	}
	require.Len(t, slips, 2, "inject and heal of fault 2")
	require.Contains(t, slips[0], "fault 2 (isolate site/dc3) injected 1.")
}

// A heal that takes long (members restarting after a power-off) runs
// beside the plan: a later heal is not pushed back by it. The next
// inject waits for it (its lateness is recorded), so that the next fault
// meets the system the scenario describes, not a double failure.
func TestSlowHealDelaysNextInjectNotNextHeal(t *testing.T) {
	start := time.Now()
	fi := newFakeInjector(start, -1, 0, 1500*time.Millisecond)
	plan := []Fault{
		{Index: 0, At: 0, For: 200 * time.Millisecond, Fault: lab.Fault{Action: "power-off", Target: "rack/dc1/r1"}},
		{Index: 1, At: 100 * time.Millisecond, For: 200 * time.Millisecond, Fault: lab.Fault{Action: "isolate", Target: "site/dc3"}},
		{Index: 2, At: 500 * time.Millisecond, For: 100 * time.Millisecond, Fault: lab.Fault{Action: "power-off", Target: "rack/dc2/r1"}},
	}
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi}
	require.NoError(t, s.Run(context.Background(), start, 5*time.Second, plan))
	fi.mu.Lock()
	defer fi.mu.Unlock()
	// Heals of faults 0 and 1 start at 0.2 s and 0.3 s, side by side.
	require.Less(t, fi.recovered[1], 2200*time.Millisecond, "fault 1's heal not held back by fault 0's")
	require.GreaterOrEqual(t, fi.injected[2], 1700*time.Millisecond, "the next inject waits for the heals")
	require.Len(t, fi.recovered, 3)
	require.Empty(t, s.Active())
	r := s.Realised()
	require.GreaterOrEqual(t, r[2].InjectLate, 1200*time.Millisecond, "the wait is a recorded slip")
}

// settlingInjector is a fakeInjector that reports full strength only
// settle after each heal, or never (settleErr).
type settlingInjector struct {
	*fakeInjector
	settle    time.Duration
	settleErr error
	settles   []time.Duration // when each Settle began
}

func (si *settlingInjector) Settle(ctx context.Context) error {
	si.mu.Lock()
	si.settles = append(si.settles, time.Since(si.start))
	si.mu.Unlock()
	time.Sleep(si.settle)
	return si.settleErr
}

// An inject that follows a heal waits until the injector reports full
// strength (the restarted members back in service): the first inject does
// not, and a failure to settle is recorded and the fault still goes in.
func TestInjectAfterHealWaitsForFullStrength(t *testing.T) {
	for _, settleErr := range []error{nil, errors.New("kafka not healthy")} {
		start := time.Now()
		path := filepath.Join(t.TempDir(), "history.jsonl")
		h, err := history.Create(path, start)
		require.NoError(t, err)
		si := &settlingInjector{fakeInjector: newFakeInjector(start, -1, 0, 0),
			settle: time.Second, settleErr: settleErr}
		plan := []Fault{
			{Index: 0, At: 0, For: 100 * time.Millisecond, Fault: lab.Fault{Action: "power-off", Target: "rack/dc1/r1"}},
			{Index: 1, At: 300 * time.Millisecond, For: 100 * time.Millisecond, Fault: lab.Fault{Action: "isolate", Target: "site/dc3"}},
		}
		s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: si, History: h}
		require.NoError(t, s.Run(context.Background(), start, 3*time.Second, plan))
		require.NoError(t, h.Close())
		si.mu.Lock()
		require.Len(t, si.settles, 1, "settled once, before the inject after a heal")
		require.GreaterOrEqual(t, si.settles[0], 100*time.Millisecond)
		require.GreaterOrEqual(t, si.injected[1], si.settles[0]+time.Second, "the inject waited for full strength")
		si.mu.Unlock()
		require.GreaterOrEqual(t, s.Realised()[1].InjectLate, 900*time.Millisecond, "the wait is a recorded slip")
		evs, err := history.ReadFile(path)
		require.NoError(t, err)
		var settleEvents int
		for _, e := range evs {
			if e.Type == history.Fault && e.Phase == "settle" {
				settleEvents++
				require.Contains(t, e.Error, "kafka not healthy")
			}
		}
		if settleErr == nil {
			require.Zero(t, settleEvents)
		} else {
			require.Equal(t, 1, settleEvents, "a failure to settle is in the history")
		}
	}
}

// A late inject moves the run's end by its lateness, so that the fault
// lasts its For and the time after it keeps its planned length (measured
// on kind: a 76 s heal made the next fault 50 s late, and the planned end
// cut it to 20 s of 30 and left no time to see the recovery). Extend is
// told the new end.
func TestLateInjectMovesTheRunsEnd(t *testing.T) {
	start := time.Now()
	fi := newFakeInjector(start, -1, 0, 700*time.Millisecond)
	plan := []Fault{
		{Index: 0, At: 0, For: 100 * time.Millisecond, Fault: lab.Fault{Action: "power-off", Target: "rack/dc1/r1"}},
		{Index: 1, At: 200 * time.Millisecond, For: 300 * time.Millisecond, Fault: lab.Fault{Action: "isolate", Target: "site/dc3"}},
	}
	var (
		mu      sync.Mutex
		extends []time.Duration
	)
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi, Extend: func(end time.Duration) {
		mu.Lock()
		extends = append(extends, end)
		mu.Unlock()
	}}
	runEnd := 600 * time.Millisecond
	require.NoError(t, s.Run(context.Background(), start, runEnd, plan))
	returned := time.Since(start)
	r := s.Realised()
	require.Len(t, r, 2)
	late := r[1].InjectLate
	require.GreaterOrEqual(t, late, 500*time.Millisecond, "fault 1 waited for fault 0's 700 ms heal")
	require.GreaterOrEqual(t, s.End(), runEnd+late, "the end moved by the lateness")
	require.LessOrEqual(t, s.End(), runEnd+late+holdLead+holdEvery, "by no more than hold's lead")
	mu.Lock()
	require.NotEmpty(t, extends)
	require.True(t, slices.IsSorted(extends), "the end only moves later: %v", extends)
	require.Equal(t, s.End(), extends[len(extends)-1], "Extend told the last end")
	mu.Unlock()
	require.NotZero(t, r[1].Healed, "healed by the schedule, not cut at the end")
	require.InDelta(t, float64(300*time.Millisecond), float64(r[1].Healed-r[1].Injected), float64(50*time.Millisecond), "the late fault lasted its For")
	require.GreaterOrEqual(t, returned, runEnd+late, "the run went on after the late fault's heal")
}

// A heal that blocks past the run's planned end must not let the load end
// before the next fault goes in: the end moves while the inject waits,
// not only once it went in (the kind quickstart's fault 2 went in 67 s
// late, after the load had ended at its planned count). The load here is
// what runner's generator does: it ends once the clock passes the end
// Extend last gave (or the planned one).
func TestEndMovesWhileALateInjectWaits(t *testing.T) {
	start := time.Now()
	fi := newFakeInjector(start, -1, 0, 900*time.Millisecond)
	plan := []Fault{
		{Index: 0, At: 0, For: 100 * time.Millisecond, Fault: lab.Fault{Action: "power-off", Target: "rack/dc1/r1"}},
		{Index: 1, At: 200 * time.Millisecond, For: 200 * time.Millisecond, Fault: lab.Fault{Action: "isolate", Target: "site/dc3"}},
	}
	runEnd := 600 * time.Millisecond
	var (
		mu      sync.Mutex
		loadEnd = runEnd
	)
	s := &Scheduler{Log: slog.New(slog.DiscardHandler), Injector: fi, Extend: func(end time.Duration) {
		mu.Lock()
		loadEnd = max(loadEnd, end)
		mu.Unlock()
	}}
	loadEnded := make(chan time.Duration, 1)
	go func() {
		for {
			mu.Lock()
			until := loadEnd
			mu.Unlock()
			if now := time.Since(start); now >= until {
				loadEnded <- now
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	require.NoError(t, s.Run(context.Background(), start, runEnd, plan))
	r := s.Realised()
	require.Len(t, r, 2)
	require.GreaterOrEqual(t, r[1].InjectLate, runEnd, "fault 1 waited for fault 0's heal past the planned end")
	ended := <-loadEnded
	keep := runEnd - plan[1].At // fault 1 and the time after it
	require.GreaterOrEqual(t, ended, r[1].Injected+keep, "the load lasted through the late fault and the time after it")
}
