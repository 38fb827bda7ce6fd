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
	"time"

	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/load/finalstate"
	"github.com/chaosloop/chaosloop/load/handler"
	"github.com/chaosloop/chaosloop/load/ledger"
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
	// Seed drives every random choice: fault members, arrivals, jitter.
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
	Seed    uint64         `json:"seed"`
	Started time.Time      `json:"started"`
	Faults  []faults.Fault `json:"faults"`
	// Realised: when each fault actually went in and out and how late,
	// added once the faults are done (replay uses Faults, the plan).
	Realised []faults.Realised `json:"realised,omitempty"`
}

// roles are the services the workload uses.
type roles struct {
	ledger, kafka, redis, docstore, handlers string
	clientNodes                              []string
}

func pickRoles(sc *scenarios.Scenario) (roles, error) {
	var r roles
	var stateless []scenarios.Service
	for _, sv := range sc.Services {
		switch sv.Kind {
		case scenarios.KindMySQL:
			// The central ledger: prefer group replication (MySQL 8), as
			// Mojaloop's core services use.
			if r.ledger == "" || sv.Pool == "RDBMS-CENTRAL-LEDGER-LIVE" {
				r.ledger = sv.Name
			}
		case scenarios.KindKafka:
			if r.kafka == "" {
				r.kafka = sv.Name
			}
		case scenarios.KindRedis:
			if r.redis == "" {
				r.redis = sv.Name
			}
		case scenarios.KindMongoDB:
			if r.docstore == "" || sv.Pool == "DOC-BULK-LIVE" {
				r.docstore = sv.Name
			}
		case scenarios.KindStateless:
			stateless = append(stateless, sv)
		}
	}
	var missing []string
	if r.ledger == "" {
		missing = append(missing, "a mysql service (the ledger)")
	}
	if r.kafka == "" {
		missing = append(missing, "a kafka service")
	}
	if r.redis == "" {
		missing = append(missing, "a redis service (duplicate check)")
	}
	if len(stateless) == 0 {
		missing = append(missing, "a stateless service (where the handlers run)")
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("scenario %s cannot carry the transfer workload: it needs %s", sc.Name, strings.Join(missing, ", "))
	}
	h := stateless[0]
	for _, sv := range stateless {
		if sv.Pool == "CORE-HANDLERS" || strings.Contains(sv.Name, "handler") {
			h = sv
			break
		}
	}
	r.handlers = h.Name
	// The client enters where the API adapters are, else beside the handlers.
	client := h
	for _, sv := range stateless {
		if sv.Pool == "CORE-API-ADAPTERS" || strings.Contains(sv.Name, "adapter") {
			client = sv
			break
		}
	}
	r.clientNodes = []string{client.Name}
	return r, nil
}

// RunLogFile is the run's log, in its directory.
const RunLogFile = "run.log"

// Run performs one run. The lab stays up afterwards (for status, another
// run, or down); every fault is recovered and the handlers stopped whatever
// happens.
func Run(ctx context.Context, o Options) (*Result, error) {
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
			return nil, err
		}
		o.Binary = exe
	}
	sc := o.Scenario
	if sc.Load == nil {
		return nil, fmt.Errorf("scenario %s has no load: section; run needs one (rate, duration, warmup, participants)", sc.Name)
	}
	r, err := pickRoles(sc)
	if err != nil {
		return nil, err
	}
	started := time.Now().UTC()
	dir := filepath.Join(o.RunsDir, started.Format("20060102-150405")+"-"+sc.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Dir: dir}
	// The run's own log (the workload's Kafka and database clients, the
	// lab, the scheduler) is kept beside its evidence: a stall or an
	// unknown outcome is explained there, and the caller's log may be gone.
	logFile, err := os.Create(filepath.Join(dir, RunLogFile))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	o.Log = slog.New(slog.NewMultiHandler(o.Log.Handler(), slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})))
	plan := o.Plan
	if plan == nil {
		plan = faults.Plan(sc, o.Seed)
	}
	if err := saveRunFiles(dir, o, plan, started); err != nil {
		return res, err
	}
	phase := func(name, detail string) {
		if o.Progress != nil {
			o.Progress.Phase(name, detail)
		}
		o.Log.Info("run phase", "phase", name, "detail", detail)
	}

	phase("up", "standing the lb up (or reusing it)")
	if err := o.Provider.Capabilities().Check(o.Provider.Name(), labFaults(plan)); err != nil {
		return res, err
	}
	lb, err := o.Provider.Up(ctx, sc)
	if err != nil {
		return res, err
	}
	if err := reports.WriteBudgets(dir, failoverBudgets(lb, sc)); err != nil {
		return res, err
	}
	// A crashed earlier run may have left faults in place.
	if err := lb.RecoverAll(ctx); err != nil {
		return res, fmt.Errorf("recovering faults left by an earlier run: %w", err)
	}

	h, err := history.Create(filepath.Join(dir, reports.HistoryFile), started)
	if err != nil {
		return res, err
	}
	defer h.Close()

	w := &work{o: o, lb: lb, roles: r, dir: dir, h: h, plan: plan, phase: phase, started: started}
	runErr := w.run(ctx)
	if err := h.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if ctx.Err() != nil {
		return res, errors.Join(runErr, ctx.Err())
	}
	phase("judge", "checking the evidence")
	rep, err := reports.Generate(context.WithoutCancel(ctx), o.Log, reports.Run{Dir: dir, Scenario: sc, Seed: int64(o.Seed), Started: started}, checks.Options{})
	res.Report = rep
	return res, errors.Join(runErr, err)
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
	b, err := json.MarshalIndent(SavedPlan{Seed: o.Seed, Started: started, Faults: plan}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PlanFile), b, 0o644)
}

// work is one run in progress.
type work struct {
	o       Options
	lb      lab.Lab
	roles   roles
	dir     string
	h       *history.Writer
	plan    []faults.Fault
	phase   func(name, detail string)
	started time.Time
}

func (w *work) run(ctx context.Context) error {
	sc, lb, r := w.o.Scenario, w.lb, w.roles
	ld := sc.Load
	participants := ledger.DefaultParticipants(*ld.Participants)

	w.phase("setup", "primaries, ledger, participants, handlers")
	// Start from the layout analyze assumes (Redis's primary is member 0),
	// whatever an earlier run's failovers left behind.
	if err := lb.PreferPrimaries(ctx); err != nil {
		return fmt.Errorf("putting primaries back where analyze assumes them: %w", err)
	}
	// Kafka likewise: each partition led by the first broker of its replica
	// list (after each heal too, see labInjector.Recover).
	if err := lb.PreferLeaders(ctx, 10*time.Second); err != nil {
		w.o.Log.Warn("preferred leaders before the load", "err", err)
	}
	dsns, err := lb.MySQLDSNs(r.ledger)
	if err != nil {
		return err
	}
	store, err := ledger.Open(ledger.Options{DSNs: dsns, Dial: lb.DialFromHostOf, Log: w.o.Log})
	if err != nil {
		return err
	}
	participants.Reset = true
	err = store.Setup(ctx, participants)
	store.Close()
	if err != nil {
		return fmt.Errorf("ledger setup: %w", err)
	}
	kafkaEPs, err := lb.Endpoints(r.kafka)
	if err != nil {
		return err
	}
	master, sentinels, err := lb.RedisSentinels(r.redis)
	if err != nil {
		return err
	}
	redisEPs, err := lb.Endpoints(r.redis)
	if err != nil {
		return err
	}
	var docURIs []string
	if r.docstore != "" {
		if docURIs, err = lb.Endpoints(r.docstore); err != nil {
			return err
		}
		if err := lb.PrepareDocstore(ctx, r.docstore, "mojaloop", []string{"bulkTransfers"}); err != nil {
			return fmt.Errorf("document store: %w", err)
		}
	}

	// Handlers: one worker per member of the stateless service, on its node.
	hcfg := handler.Config{Name: "central-ledger", Brokers: kafkaEPs, DSNs: dsns, Group: "central-ledger"}
	hpath, err := filepath.Abs(filepath.Join(w.dir, HandlerFile))
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(hcfg, "", "  ")
	if err := os.WriteFile(hpath, b, 0o600); err != nil {
		return err
	}
	if err := lb.StartWorkers(ctx, r.handlers, lab.Worker{Path: w.o.Binary, Args: []string{"internal", "handler", "-v", "--config", hpath}, MemberFlag: "--member"}); err != nil {
		return fmt.Errorf("starting handlers: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := lb.StopWorkers(sctx, r.handlers); err != nil {
			w.o.Log.Error("stopping handlers", "err", err)
		}
	}()

	clientDial, err := lb.DialFromAny(r.clientNodes[0])
	if err != nil {
		return err
	}
	lcfg := load.Config{
		Rate: *ld.Rate, Duration: ld.Warmup.D() + ld.Duration.D(), Seed: w.o.Seed,
		RunID:        w.started.Format("20060102T150405"),
		Participants: participants.Names, Currency: participants.Currency,
		Kafka:    load.Kafka{Service: r.kafka, Brokers: kafkaEPs},
		Redis:    load.Redis{Service: r.redis, MasterName: master, Sentinels: sentinels},
		Docstore: load.Docstore{Service: r.docstore, URIs: docURIs},
		Dial:     clientDial,
	}
	gen, err := load.New(ctx, w.o.Log, lcfg, w.h)
	if err != nil {
		return fmt.Errorf("load client: %w", err)
	}
	defer gen.Close()

	services := make([]string, 0, len(sc.Services))
	for _, sv := range sc.Services {
		services = append(services, sv.Name)
	}
	smp := startSampler(ctx, lb, w.h, services)
	defer smp.Stop()

	// Load, warmup first; faults count from the end of warmup.
	_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "warmup"})
	w.phase("warmup", ld.Warmup.D().String())
	loadStart := time.Now()
	sched := &faults.Scheduler{Log: w.o.Log, Injector: labInjector{lb: lb, log: w.o.Log}, History: w.h}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() { loadDone <- gen.Run(loadCtx) }()

	schedDone := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			schedDone <- nil
			return
		case <-time.After(ld.Warmup.D()):
		}
		_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "baseline"})
		w.phase("load", fmt.Sprintf("%.0f transfers/s for %s, %d faults", *ld.Rate, ld.Duration.D(), len(w.plan)))
		schedDone <- sched.Run(ctx, time.Now(), ld.Duration.D(), w.plan)
	}()

	total := ld.Warmup.D() + ld.Duration.D()
	tick := time.NewTicker(time.Second)
	var loadErr error
loop:
	for {
		select {
		case loadErr = <-loadDone:
			break loop
		case <-tick.C:
			if w.o.Progress != nil {
				w.o.Progress.Load(time.Since(loadStart), total, gen.Stats(), sched.Active())
			}
		}
	}
	tick.Stop()
	schedErr := <-schedDone
	sched.RecoverAll()
	if err := w.saveRealised(sched.Realised()); err != nil {
		w.o.Log.Error("plan.json: realised schedule", "err", err)
	}
	if ctx.Err() != nil {
		return errors.Join(loadErr, ctx.Err())
	}

	// Heal and converge: every service healthy again.
	_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "converge"})
	w.phase("converge", "waiting for every service to be healthy")
	convErr := w.converge(ctx)
	if convErr != nil {
		_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "converge", Error: convErr.Error()})
	}
	smp.Stop()

	w.phase("final state", "reading the ledger, Redis, the document store and Kafka")
	_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "check"})
	redisMembers := make([]string, len(redisEPs))
	copy(redisMembers, redisEPs)
	src := finalstate.Sources{
		LedgerService: r.ledger, LedgerDSNs: dsns,
		Redis: lcfg.Redis, RedisMembers: redisMembers,
		Docstore: lcfg.Docstore, Kafka: lcfg.Kafka,
		Dial: lb.DialFromHostOf,
	}
	final := finalstate.Read(ctx, w.o.Log, src)
	if _, err := finalstate.ConsumeAll(ctx, w.o.Log, src, "", w.h); err != nil {
		_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: "check", Error: "consume-all: " + err.Error()})
	}
	if err := history.WriteFinal(filepath.Join(w.dir, reports.FinalFile), final); err != nil {
		return err
	}
	return errors.Join(loadErr, schedErr)
}

// saveRealised adds the realised schedule to plan.json.
func (w *work) saveRealised(r []faults.Realised) error {
	b, err := json.MarshalIndent(SavedPlan{Seed: w.o.Seed, Started: w.started, Faults: w.plan, Realised: r}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(w.dir, PlanFile), b, 0o644)
}

// converge waits until every service is healthy.
func (w *work) converge(ctx context.Context) error {
	deadline := time.Now().Add(w.o.Converge)
	var last error
	for time.Now().Before(deadline) {
		st, err := w.lb.Status(ctx)
		if err != nil {
			return err
		}
		last = nil
		for _, s := range st.Services {
			if !s.Healthy {
				last = fmt.Errorf("%s not healthy", s.Name)
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("not converged after %s: %w", w.o.Converge, last)
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
}

// preferLeadersAfterHeal bounds the preferred leader election that follows
// each heal: a broker that was down leads again only once it is back in
// sync, which takes seconds after its restart.
const preferLeadersAfterHeal = 25 * time.Second

// Inject injects at once: the scheduler stamps the fault when injecting
// starts, so nothing may wait in between (an election before each inject
// delayed a fault by 6.8 s, measured).
func (li labInjector) Inject(ctx context.Context, f faults.Fault) (string, error) {
	af, err := li.lb.Inject(ctx, f.Fault)
	return af.Target, err
}

// Recover heals, then, in the background, puts every Kafka partition's
// leadership back on the first broker of its replica list, as analyze
// assumes, retrying until the healed brokers are in sync again (bounded by
// preferLeadersAfterHeal), so that the next fault finds the layout analyze
// judged. The run also does it before the load starts.
func (li labInjector) Recover(ctx context.Context, f faults.Fault) error {
	err := li.lb.Recover(ctx, lab.Fault{Action: f.Action, Target: f.Target})
	go func() {
		pctx, cancel := context.WithTimeout(context.Background(), preferLeadersAfterHeal+5*time.Second)
		defer cancel()
		if err := li.lb.PreferLeaders(pctx, preferLeadersAfterHeal); err != nil {
			li.log.Warn("preferred leaders after heal", "fault", f.Action+" "+f.Target, "err", err)
		} else {
			li.log.Info("preferred leaders after heal", "fault", f.Action+" "+f.Target)
		}
	}()
	return err
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
