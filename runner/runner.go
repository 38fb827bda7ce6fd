// Package runner is `chaosloop run`: it stands the scenario's lab up (or
// reuses it), starts the transfer handlers on the stateless service, drives
// the open-loop transfer load, applies the scenario's faults on schedule,
// heals, waits for convergence, reads the final state and has the run
// judged. Everything observed goes to the run directory as it happens.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Options of a run.
type Options struct {
	Scenario *scenarios.Scenario
	// ScenarioSource is the scenario file's text, saved in the run
	// directory for replay.
	ScenarioSource []byte
	// Provider stands the lab up (the CLI's --on).
	Provider lab.Provider
	// RunsDir holds one directory per run (default "runs").
	RunsDir string
	// Seed drives every random choice: fault members, arrivals; the
	// provider's latency jitter takes the same seed (cli.LabFlags.Provider).
	Seed uint64
	// Plan replays a saved fault plan instead of drawing one from Seed.
	Plan []faults.Fault
	// Binary is the chaosloop executable the handler workers run (default:
	// this process's executable).
	Binary string
	Log    *slog.Logger
	// Progress receives the run's phases and live counters.
	Progress Progress
	// Converge bounds the wait for every service to be healthy after the
	// faults healed (default 3 minutes).
	Converge time.Duration
}

// Progress is told what the run does.
type Progress interface {
	// Phase starts a phase of the run.
	Phase(name, detail string)
	// Load reports live counters while transfers flow.
	Load(elapsed, total time.Duration, st *load.Stats, activeFaults []faults.Fault)
}

// Result of a run.
type Result struct {
	Dir    string
	Report *checks.Report
}

// Saved run files besides the reports' own.
const (
	ScenarioFile = "scenario.yaml"
	PlanFile     = "plan.json"
	HandlerFile  = "handler.json"
)

// SavedPlan is plan.json: what a replay needs besides the scenario.
type SavedPlan struct {
	Seed uint64 `json:"seed"`
	// Backend is the backend the run stood its lab up on (--on).
	Backend string         `json:"backend,omitempty"`
	Started time.Time      `json:"started"`
	Faults  []faults.Fault `json:"faults"`
	// Realised: when each fault actually went in and out and how late,
	// added once the faults are done (replay uses Faults, the plan).
	Realised []faults.Realised `json:"realised,omitempty"`
	// End is when the load ended, as an offset from the end of warmup,
	// when a late inject moved it past the scenario's duration (so that
	// every fault and the time after it kept their planned length).
	End time.Duration `json:"end,omitempty"`
}

// roles are the services the workload uses, picked by kind and pool.
type roles struct {
	ledger, kafka, redis, docstore, handlers string
	// client is the service through whose nodes the load enters the lab.
	client string
}

// The pools of the seed's layout that decide a role when a scenario has
// several services of the kind.
const (
	ledgerPool   = "RDBMS-CENTRAL-LEDGER-LIVE"
	docstorePool = "DOC-BULK-LIVE"
	handlersPool = "CORE-HANDLERS"
	adaptersPool = "CORE-API-ADAPTERS"
)

func pickRoles(sc *scenarios.Scenario) (roles, error) {
	r := roles{
		// The central ledger: group replication (MySQL 8) in its own pool,
		// as Mojaloop's core services use.
		ledger:   pick(sc, scenarios.KindMySQL, ledgerPool),
		kafka:    pick(sc, scenarios.KindKafka, ""),
		redis:    pick(sc, scenarios.KindRedis, ""),
		docstore: pick(sc, scenarios.KindMongoDB, docstorePool),
		handlers: pick(sc, scenarios.KindStateless, handlersPool),
		// The client enters where the API adapters are, else beside the
		// handlers.
		client: pick(sc, scenarios.KindStateless, adaptersPool),
	}
	if !inPool(sc, r.client, adaptersPool) {
		r.client = r.handlers
	}
	var missing []string
	for _, m := range []struct{ name, what string }{
		{r.ledger, "a mysql service (the ledger)"},
		{r.kafka, "a kafka service"},
		{r.redis, "a redis service (duplicate check)"},
		{r.handlers, "a stateless service (where the handlers run)"},
	} {
		if m.name == "" {
			missing = append(missing, m.what)
		}
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("scenario %s cannot carry the transfer workload: it needs %s", sc.Name, strings.Join(missing, ", "))
	}
	return r, nil
}

// pick returns the first service of kind in pool, else the first of kind,
// else "".
func pick(sc *scenarios.Scenario, kind, pool string) string {
	first := ""
	for _, sv := range sc.Services {
		if sv.Kind != kind {
			continue
		}
		if pool != "" && sv.Pool == pool {
			return sv.Name
		}
		if first == "" {
			first = sv.Name
		}
	}
	return first
}

func inPool(sc *scenarios.Scenario, service, pool string) bool {
	for _, sv := range sc.Services {
		if sv.Name == service {
			return sv.Pool == pool
		}
	}
	return false
}

// RunLogFile is the run's log, in its directory.
const RunLogFile = "run.log"

// Run performs one run: the lab up, setup, drive, collect (see work),
// judge. The lab stays up afterwards (for status, another run, or down);
// every fault is recovered and the handlers stopped whatever happens.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	sc := o.Scenario
	if sc.Load == nil {
		if o.Provider.Capabilities().Observing != "" {
			return nil, fmt.Errorf("scenario %s has no load: section; a run that only observes takes its warmup and duration from it (its rate is not used)", sc.Name)
		}
		return nil, fmt.Errorf("scenario %s has no load: section; run needs one (rate, duration, warmup, participants)", sc.Name)
	}
	var r roles
	if o.Provider.Capabilities().Observing == "" {
		// the load's roles; a run that only observes has none
		if r, err = pickRoles(sc); err != nil {
			return nil, err
		}
	}
	w := &work{o: o, roles: r, started: time.Now().UTC()}
	w.dir = filepath.Join(o.RunsDir, w.started.Format("20060102-150405")+"-"+sc.Name)
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Dir: w.dir}
	// The run's own log (the workload's Kafka and database clients, the
	// lab, the scheduler) is kept beside its evidence: a stall or an
	// unknown outcome is explained there, and the caller's log may be gone.
	logFile, err := os.Create(filepath.Join(w.dir, RunLogFile))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	w.o.Log = slog.New(slog.NewMultiHandler(o.Log.Handler(), newRunLogHandler(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	w.plan = o.Plan
	if w.plan == nil {
		w.plan = faults.Plan(sc, o.Seed)
	}
	if err := saveRunFiles(w.dir, o, w.plan, w.started); err != nil {
		return res, err
	}
	err = w.up(ctx)
	if c, ok := w.lb.(lab.Closer); ok {
		defer c.Close()
	}
	if err != nil {
		return res, err
	}
	runErr := w.record(ctx)
	if ctx.Err() != nil {
		return res, errors.Join(runErr, ctx.Err())
	}
	w.phase("judge", "checking the evidence")
	rep, err := reports.Generate(context.WithoutCancel(ctx), w.o.Log, reports.Run{Dir: w.dir, Scenario: sc, Seed: o.Seed, Backend: o.Provider.Name(), Started: w.started}, checks.Options{})
	res.Report = rep
	return res, errors.Join(runErr, err)
}

func (o Options) withDefaults() (Options, error) {
	if o.Provider == nil {
		return o, errors.New("run: no provider (where the lab runs)")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RunsDir == "" {
		o.RunsDir = "runs"
	}
	if o.Converge == 0 {
		o.Converge = 3 * time.Minute
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, err
		}
		o.Binary = exe
	}
	return o, nil
}

// phase starts a phase of the run: shown, and logged.
func (w *work) phase(name, detail string) {
	if w.o.Progress != nil {
		w.o.Progress.Phase(name, detail)
	}
	w.o.Log.Info("run phase", "phase", name, "detail", detail)
}

// up checks the plan against what the backend can inject, stands the lab
// up (or reuses it), saves the failover budgets and recovers the faults a
// crashed earlier run may have left in place.
func (w *work) up(ctx context.Context) error {
	p := w.o.Provider
	if err := p.Capabilities().Check(p.Name(), labFaults(w.plan)); err != nil {
		return err
	}
	w.phase("up", "standing the lab up (or reusing it)")
	lb, err := p.Up(ctx, w.o.Scenario)
	if err != nil {
		return err
	}
	w.lb = lb
	if err := reports.WriteBudgets(w.dir, failoverBudgets(lb, w.o.Scenario)); err != nil {
		return err
	}
	if err := lb.RecoverAll(ctx); err != nil {
		return fmt.Errorf("recovering faults left by an earlier run: %w", err)
	}
	return nil
}

// record runs the work with its history open, and reports the events the
// history could not write.
func (w *work) record(ctx context.Context) error {
	h, err := history.Create(filepath.Join(w.dir, reports.HistoryFile), w.started)
	if err != nil {
		return err
	}
	defer h.Close()
	w.h = h
	var runErr error
	if why := w.o.Provider.Capabilities().Observing; why != "" {
		runErr = w.observe(ctx, why)
	} else {
		runErr = w.run(ctx)
	}
	if err := h.Lost(); err != nil {
		w.o.Log.Error("history", "err", err)
		runErr = errors.Join(runErr, err)
	}
	if err := h.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// labFaults are the plan's faults as the lab injects them.
func labFaults(plan []faults.Fault) []lab.Fault {
	out := make([]lab.Fault, len(plan))
	for i, f := range plan {
		out[i] = f.Fault
	}
	return out
}

func saveRunFiles(dir string, o Options, plan []faults.Fault, started time.Time) error {
	src := o.ScenarioSource
	if src == nil {
		b, err := json.MarshalIndent(o.Scenario, "", "  ")
		if err != nil {
			return err
		}
		src = b
	}
	if err := os.WriteFile(filepath.Join(dir, ScenarioFile), src, 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(SavedPlan{Seed: o.Seed, Backend: o.Provider.Name(), Started: started, Faults: plan}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PlanFile), b, 0o644)
}

// failoverBudgets are the budgets the checks judge failovers by: the
// scenario's expect.failover where it sets one, else the engine's own.
func failoverBudgets(lb lab.Observer, sc *scenarios.Scenario) map[string]checks.Budget {
	out := map[string]checks.Budget{}
	for name, b := range lb.FailoverBudgets() {
		out[name] = checks.Budget{Budget: checks.Sec(b.Budget), Derivation: b.Derivation, Source: checks.SourceEngine}
		if d, ok := checks.ScenarioFailover(sc, name); ok {
			out[name] = checks.Budget{Budget: checks.Sec(d), Derivation: "expect.failover", Source: checks.SourceExpect}
		}
	}
	return out
}

// labInjector adapts the lab's fault primitives to the scheduler.
type labInjector struct {
	lb  lab.Lab
	log *slog.Logger
	// leaders are the preferred leader elections running after heals.
	leaders sync.WaitGroup
}

// settleBound bounds the wait for full strength before a fault that
// follows a heal: the recovery the throughput check allows after a heal.
const settleBound = 45 * time.Second

// preferLeadersAfterHeal bounds the preferred leader election that follows
// each heal: a broker that was down leads again only once it is back in
// sync, which takes seconds after its restart.
const preferLeadersAfterHeal = 25 * time.Second

// Inject injects at once: the scheduler stamps the fault when injecting
// starts, so nothing may wait in between (an election before each inject
// delayed a fault by 6.8 s, measured).
func (li *labInjector) Inject(ctx context.Context, f faults.Fault) (string, error) {
	af, err := li.lb.Inject(ctx, f.Fault)
	return af.Target, err
}

// Recover heals, then, in the background, puts every Kafka partition's
// leadership back on the first broker of its replica list, as analyze
// assumes, retrying until the healed brokers are in sync again (bounded by
// preferLeadersAfterHeal), so that the next fault finds the layout analyze
// judged. The run also does it before the load starts.
func (li *labInjector) Recover(ctx context.Context, f faults.Fault) error {
	err := li.lb.Recover(ctx, lab.Fault{Action: f.Action, Target: f.Target})
	li.leaders.Go(func() {
		pctx, cancel := context.WithTimeout(context.Background(), preferLeadersAfterHeal+5*time.Second)
		defer cancel()
		if err := li.lb.PreferLeaders(pctx, preferLeadersAfterHeal); err != nil {
			li.log.Warn("preferred leaders after heal", "fault", f.Action+" "+f.Target, "err", err)
		} else {
			li.log.Info("preferred leaders after heal", "fault", f.Action+" "+f.Target)
		}
	})
	return err
}

// Settle waits, within settleBound, for the preferred leader elections
// after the heals and for every service to be healthy (every member back,
// Kafka's replicas in sync), so that the next fault finds the system
// analyze judged.
func (li *labInjector) Settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, settleBound)
	defer cancel()
	done := make(chan struct{})
	go func() { li.leaders.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("preferred leaders not elected within %s", settleBound)
	}
	return awaitHealthy(ctx, li.lb, settleBound)
}

// LoadSaved reads a run directory's scenario and plan, for replay.
func LoadSaved(dir string) (scenarioFile string, plan SavedPlan, err error) {
	b, err := os.ReadFile(filepath.Join(dir, PlanFile))
	if err != nil {
		return "", plan, fmt.Errorf("%s is not a run directory: %w", dir, err)
	}
	if err := json.Unmarshal(b, &plan); err != nil {
		return "", plan, fmt.Errorf("%s: %w", filepath.Join(dir, PlanFile), err)
	}
	return filepath.Join(dir, ScenarioFile), plan, nil
}
