package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/load/finalstate"
	"github.com/chaosloop/chaosloop/load/handler"
	"github.com/chaosloop/chaosloop/load/ledger"
	"github.com/chaosloop/chaosloop/reports"
)

// work is one run in progress, on a lab that is up.
type work struct {
	o       Options
	lb      lab.Lab
	roles   roles
	dir     string
	h       *history.Writer
	plan    []faults.Fault
	started time.Time
}

// wiring is what setup found: where the workload's clients connect.
type wiring struct {
	dsns     []string
	redisEPs []string
	load     load.Config
}

// run is the run's steps once the lab is up: setup, drive (load and
// faults), collect (convergence and final state). Run then judges.
func (w *work) run(ctx context.Context) error {
	wr, err := w.setup(ctx)
	if err != nil {
		return err
	}
	stopHandlers, err := w.startHandlers(ctx, wr)
	if err != nil {
		return err
	}
	defer stopHandlers()
	gen, err := load.New(ctx, w.o.Log, wr.load, w.h)
	if err != nil {
		return fmt.Errorf("load client: %w", err)
	}
	defer gen.Close()

	services := make([]string, 0, len(w.o.Scenario.Services))
	for _, sv := range w.o.Scenario.Services {
		services = append(services, sv.Name)
	}
	smp := startSampler(ctx, w.lb, w.h, services)
	defer smp.Stop()

	loadErr, schedErr := w.drive(ctx, gen)
	if ctx.Err() != nil {
		return errors.Join(loadErr, ctx.Err())
	}
	w.converge(ctx)
	smp.Stop()
	if err := w.collect(ctx, wr); err != nil {
		return err
	}
	return errors.Join(loadErr, schedErr)
}

// setup puts the lab into the layout analyze assumes, resets the ledger
// and its participants, prepares the document store and finds the
// endpoints the workload's clients need.
func (w *work) setup(ctx context.Context) (*wiring, error) {
	lb, r := w.lb, w.roles
	w.phase("setup", "primaries, ledger, participants, handlers")
	// Start from the layout analyze assumes (Redis's primary is member 0),
	// whatever an earlier run's failovers left behind.
	if err := lb.PreferPrimaries(ctx); err != nil {
		return nil, fmt.Errorf("putting primaries back where analyze assumes them: %w", err)
	}
	// Kafka likewise: each partition led by the first broker of its replica
	// list (after each heal too, see labInjector.Recover).
	if err := lb.PreferLeaders(ctx, 10*time.Second); err != nil {
		w.o.Log.Warn("preferred leaders before the load", "err", err)
	}
	wr := &wiring{}
	var err error
	if wr.dsns, err = lb.MySQLDSNs(r.ledger); err != nil {
		return nil, err
	}
	participants := ledger.DefaultParticipants(*w.o.Scenario.Load.Participants)
	if err := w.setupLedger(ctx, wr.dsns, participants); err != nil {
		return nil, err
	}
	if wr.load, err = w.loadConfig(ctx, participants); err != nil {
		return nil, err
	}
	if wr.redisEPs, err = lb.Endpoints(r.redis); err != nil {
		return nil, err
	}
	return wr, nil
}

// setupLedger creates the ledger's schema and resets its participants.
func (w *work) setupLedger(ctx context.Context, dsns []string, participants ledger.Participants) error {
	store, err := ledger.Open(ledger.Options{DSNs: dsns, Dial: w.lb.DialFromHostOf, Log: w.o.Log})
	if err != nil {
		return err
	}
	participants.Reset = true
	err = store.Setup(ctx, participants)
	store.Close()
	if err != nil {
		return fmt.Errorf("ledger setup: %w", err)
	}
	return nil
}

// loadConfig is the transfer load's configuration: the scenario's rate
// and participants, Kafka, Redis and the document store as the lab serves
// them, and a client entering through the client nodes.
func (w *work) loadConfig(ctx context.Context, participants ledger.Participants) (load.Config, error) {
	lb, r, ld := w.lb, w.roles, w.o.Scenario.Load
	kafkaEPs, err := lb.Endpoints(r.kafka)
	if err != nil {
		return load.Config{}, err
	}
	master, sentinels, err := lb.RedisSentinels(r.redis)
	if err != nil {
		return load.Config{}, err
	}
	var docURIs []string
	if r.docstore != "" {
		if docURIs, err = lb.Endpoints(r.docstore); err != nil {
			return load.Config{}, err
		}
		if err := lb.PrepareDocstore(ctx, r.docstore, "mojaloop", []string{"bulkTransfers"}); err != nil {
			return load.Config{}, fmt.Errorf("document store: %w", err)
		}
	}
	clientDial, err := lb.DialFromAny(r.client)
	if err != nil {
		return load.Config{}, err
	}
	return load.Config{
		Rate: *ld.Rate, Duration: ld.Warmup.D() + ld.Duration.D(), Seed: w.o.Seed,
		RunID:        w.started.Format("20060102T150405"),
		Participants: participants.Names, Currency: participants.Currency,
		Kafka:    load.Kafka{Service: r.kafka, Brokers: kafkaEPs},
		Redis:    load.Redis{Service: r.redis, MasterName: master, Sentinels: sentinels},
		Docstore: load.Docstore{Service: r.docstore, URIs: docURIs},
		Dial:     clientDial,
	}, nil
}

// startHandlers runs one handler worker per member of the handlers'
// service, on its node, and returns what stops them.
func (w *work) startHandlers(ctx context.Context, wr *wiring) (stop func(), err error) {
	hcfg := handler.Config{Name: "central-ledger", Brokers: wr.load.Kafka.Brokers, DSNs: wr.dsns, Group: "central-ledger"}
	hpath, err := filepath.Abs(filepath.Join(w.dir, HandlerFile))
	if err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(hcfg, "", "  ")
	if err := os.WriteFile(hpath, b, 0o600); err != nil {
		return nil, err
	}
	wk := lab.Worker{Path: w.o.Binary, Args: []string{"internal", "handler", "-v", "--config", hpath}, MemberFlag: "--member",
		Files: []string{hpath}}
	if err := w.lb.StartWorkers(ctx, w.roles.handlers, wk); err != nil {
		return nil, fmt.Errorf("starting handlers: %w", err)
	}
	stop = func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := w.lb.StopWorkers(sctx, w.roles.handlers); err != nil {
			w.o.Log.Error("stopping handlers", "err", err)
		}
	}
	// The load starts once every handler consumes: load offered while
	// they still join their groups only queues (see handler.AwaitGroups).
	t0 := time.Now()
	n := len(w.lb.Topology().Service(w.roles.handlers).Members)
	if err := handler.AwaitGroups(ctx, w.o.Log, hcfg, wr.load.Dial, n, handlersReadyWait); err != nil {
		stop()
		return nil, err
	}
	w.o.Log.Info("handlers consuming", "handlers", n, "waited", time.Since(t0).Round(time.Millisecond))
	return stop, nil
}

// handlersReadyWait bounds the wait for the handlers' consumer groups.
const handlersReadyWait = 2 * time.Minute

// event records a phase change; a write that fails is counted by the
// history and reported at the end of the run (history.Writer.Lost).
func (w *work) event(phase, errText string) {
	_ = w.h.Add(history.Event{Type: history.PhaseChange, Phase: phase, Error: errText})
}

// drive offers the load, warmup first, and runs the fault plan from the
// end of warmup; every fault is recovered when it returns.
func (w *work) drive(ctx context.Context, gen *load.Generator) (loadErr, schedErr error) {
	ld := w.o.Scenario.Load
	w.event("warmup", "")
	w.phase("warmup", ld.Warmup.D().String())
	loadStart := time.Now()
	sched := &faults.Scheduler{Log: w.o.Log, Injector: &labInjector{lb: w.lb, log: w.o.Log}, History: w.h}
	var schedStart time.Time // written before sched.Run, which alone calls Extend
	var logged time.Duration // the end last logged (Extend's calls are serial)
	sched.Extend = func(end time.Duration) {
		until := schedStart.Sub(loadStart) + end
		gen.ExtendTo(until)
		// while a late inject waits, the end moves every 250 ms: a line
		// every 10 s of it
		if until-logged >= 10*time.Second || logged == 0 {
			logged = until
			w.o.Log.Warn("the fault schedule slipped: the load goes on so that every fault and the time after it keep their planned length",
				"until", until.Round(time.Millisecond), "planned", ld.Warmup.D()+ld.Duration.D())
		}
	}
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
		w.event("baseline", "")
		w.phase("load", fmt.Sprintf("%.0f transfers/s for %s, %d faults", *ld.Rate, ld.Duration.D(), len(w.plan)))
		schedStart = time.Now()
		schedDone <- sched.Run(ctx, schedStart, ld.Duration.D(), w.plan)
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case loadErr = <-loadDone:
			break loop
		case <-tick.C:
			if w.o.Progress != nil {
				w.o.Progress.Load(time.Since(loadStart), gen.Until(), gen.Stats(), sched.Active())
			}
		}
	}
	schedErr = <-schedDone
	w.endSchedule(sched)
	return loadErr, schedErr
}

// endSchedule recovers what the schedule left in place and adds the
// realised schedule, and the run's end when a late inject moved it, to
// plan.json.
func (w *work) endSchedule(sched *faults.Scheduler) {
	sched.RecoverAll()
	var end time.Duration
	if e := sched.End(); e > w.o.Scenario.Load.Duration.D() {
		end = e
	}
	if err := w.saveRealised(sched.Realised(), end); err != nil {
		w.o.Log.Error("plan.json: realised schedule", "err", err)
	}
}

// converge waits for every service to be healthy again, recording a
// failure to converge in the history.
func (w *work) converge(ctx context.Context) {
	w.event("converge", "")
	w.phase("converge", "waiting for every service to be healthy")
	if err := awaitHealthy(ctx, w.lb, w.o.Converge); err != nil {
		w.event("converge", err.Error())
	}
}

// collect reads the final state: the ledger, Redis, the document store
// and every Kafka message, into final-state.json and the history.
func (w *work) collect(ctx context.Context, wr *wiring) error {
	w.phase("final state", "reading the ledger, Redis, the document store and Kafka")
	w.event("check", "")
	src := finalstate.Sources{
		LedgerService: w.roles.ledger, LedgerDSNs: wr.dsns,
		Redis: wr.load.Redis, RedisMembers: wr.redisEPs,
		Docstore: wr.load.Docstore, Kafka: wr.load.Kafka,
		Dial: w.lb.DialFromHostOf,
	}
	final := finalstate.Read(ctx, w.o.Log, src)
	if _, err := finalstate.ConsumeAll(ctx, w.o.Log, src, "", w.h); err != nil {
		w.event("check", history.ConsumeAllFailed+err.Error())
	}
	return history.WriteFinal(filepath.Join(w.dir, reports.FinalFile), final)
}

// saveRealised adds the realised schedule to plan.json.
func (w *work) saveRealised(r []faults.Realised, end time.Duration) error {
	b, err := json.MarshalIndent(SavedPlan{Seed: w.o.Seed, Backend: w.o.Provider.Name(), Started: w.started, Faults: w.plan, Realised: r, End: end}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(w.dir, PlanFile), b, 0o644)
}

// awaitHealthy waits up to bound until every service of lb is healthy.
func awaitHealthy(ctx context.Context, lb lab.Observer, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	var last error
	for time.Now().Before(deadline) {
		st, err := lb.Status(ctx)
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
			return fmt.Errorf("%w (%v)", ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("not converged after %s: %w", bound, last)
}
