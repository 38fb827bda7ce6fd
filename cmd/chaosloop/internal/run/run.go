// Package run implements `chaosloop run FILE` and `chaosloop replay RUN_DIR`.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/faults"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/render"
	"github.com/chaosloop/chaosloop/runner"
)

type flags struct {
	lab     cli.LabFlags
	cluster cli.ClusterFlags
	deploy  cli.DeployFlags
	in      cli.Inputs
	runsDir string
	seed    uint64
	down    bool
}

func (f *flags) add(cmd *cobra.Command, withSeed bool) {
	f.lab.Add(cmd)
	f.cluster.Add(cmd)
	f.deploy.Add(cmd)
	cmd.Flags().StringVar(&f.runsDir, "runs-dir", "runs", "directory for run directories (report.json, junit.xml, report.html, history.jsonl)")
	if withSeed {
		cmd.Flags().Uint64Var(&f.seed, "seed", 0, "seed of every random choice (fault members, arrivals, jitter); 0 picks one and prints it")
	}
	cmd.Flags().BoolVar(&f.down, "down", false, "bring the lab down after the run (default: keep it for the next run)")
}

// NewRunCommand returns the run command.
func NewRunCommand(env *cli.Env) *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Stand the lab up, drive transfer load, inject the scenario's faults, and score the run",
		Long: `Run stands the scenario's lab up (or reuses it), starts the Mojaloop-shaped
transfer handlers on the scenario's stateless service, drives open-loop
transfer load at load.rate, injects the scenario's faults at their offsets
(counted from the end of warmup), heals them, waits for every service to
converge, reads the final state and checks:

  1 no acknowledged transfer lost        5 quorum as analyze predicts
  2 money conserved                      6 throughput and recovery
  3 Kafka round trip                     7 every fault had an effect
  4 replicas converged, writes readable

Everything goes to runs/<time>-<name>/: history.jsonl (flushed as it
happens), final-state.json, report.json, junit.xml and report.html.

Exit status: 0 pass; 1 chaosloop error; 2 invalid scenario; 3 safety violated
(loss, conservation); 4 liveness violated (quorum, throughput, recovery) or
inconclusive. Every fault is recovered on any exit, also on Ctrl-C; after a
crash, 'chaosloop down' (or 'heal') undoes them.

With --on k3s (--context C) an attached service (services[].attach: the
adopter's own pods) is observed, and one not attached is deployed from
--registry R (etcd, ZooKeeper, Kafka (KRaft, or on a ZooKeeper deployed too),
Redis, Galera and FerretDB on Patroni so far: a pod per member process on its node, at the engine's ports plus --port-offset; killed or powered-off
members are started again at the fault's end). When chaosloop deployed every
service (none attached), the run drives the transfer load as on the labs: the
handlers are pods on their service's nodes, from the agents' image, and the
load's client enters through its nodes' agents (from their network, so the
nodes' faults apply to it); every check is scored. With an attached service it
drives no load: it samples the services with its probes while the scenario's
faults go in (the load section gives the warmup and duration) and judges
quorum alone; the other checks are SKIP. The scenario's node agents must run
(up --on k3s).`,
		Example: `  sudo chaosloop run scenarios/quickstart.yaml --seed 42
  sudo chaosloop replay runs/20261125-120000-quickstart`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := f.in.Names(args, 1)
			if err != nil {
				return err
			}
			sc, src, err := cli.LoadScenarioSource(cmd.Context(), env, names[0])
			if err != nil {
				return err
			}
			seed := f.seed
			if seed == 0 {
				seed = uint64(time.Now().UnixNano()) % 1_000_000_007
			}
			return execute(cmd, env, &f, runner.Options{Scenario: sc, ScenarioSource: src, RunsDir: f.runsDir, Seed: seed})
		},
	}
	f.add(cmd, true)
	f.in.Add(cmd)
	return cmd
}

// NewReplayCommand returns the replay command.
func NewReplayCommand(env *cli.Env) *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "replay RUN_DIR",
		Short: "Run a saved run again: same scenario, same seed, same realised fault schedule",
		Long: `Replay reads a run directory written by 'chaosloop run' (scenario.yaml and
plan.json) and runs it again: the same scenario, the same seed and the same
realised fault schedule, into a new run directory, on the backend the run
was on (plan.json's; --on overrides it). Use it to check that a failure
reproduces, or that a fix holds. Exit status as for run.`,
		Example: `  sudo chaosloop replay runs/20261125-120000-quickstart
  sudo chaosloop replay runs/20261125-120000-quickstart --down`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteDirs),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, saved, err := runner.LoadSaved(args[0])
			if err != nil {
				return cli.Invalid(err)
			}
			sc, src, err := cli.LoadScenarioSource(cmd.Context(), env, file)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("on") && saved.Backend != "" {
				// where the run was, unless told otherwise
				f.lab.On = saved.Backend
			}
			if f.lab.On != "k3s" {
				if _, err := f.lab.Options(env); err != nil {
					return err // before saying it replays
				}
			}
			fmt.Fprintf(env.Err, "replaying %s on %s: seed %d, %d faults\n", args[0], f.lab.On, saved.Seed, len(saved.Faults))
			return execute(cmd, env, &f, runner.Options{Scenario: sc, ScenarioSource: src, RunsDir: f.runsDir, Seed: saved.Seed, Plan: saved.Faults})
		},
	}
	f.add(cmd, false)
	return cmd
}

func execute(cmd *cobra.Command, env *cli.Env, f *flags, o runner.Options) error {
	o.Log = env.Log
	prog := newProgress(env.Err)
	o.Progress = prog
	var p lab.Provider
	var err error
	if f.lab.On == "k3s" {
		p, err = cli.K3sProvider(cmd.Context(), env, &f.lab, &f.cluster, &f.deploy, o.Scenario, prog.Lab)
	} else {
		if f.cluster.Given() {
			return cli.Usagef("--kubeconfig, --context and --node-map work with --on k3s")
		}
		if err := f.deploy.Check(f.lab.On); err != nil {
			return err
		}
		p, err = f.lab.Provider(env, o.Seed, prog.Lab)
	}
	if err != nil {
		return err
	}
	o.Provider = p
	fmt.Fprintf(env.Err, "run %s: seed %d\n", o.Scenario.Name, o.Seed)
	res, err := runner.Run(cmd.Context(), o)
	prog.Close()
	if f.down {
		// Also after Ctrl-C: --down promised a clean machine.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Minute)
		derr := o.Provider.Down(dctx, o.Scenario.Name)
		cancel()
		if derr != nil {
			fmt.Fprintln(env.Err, "chaosloop: down:", derr)
		}
	}
	if res != nil && res.Report != nil {
		render.Text(env.Out, res.Report)
		fmt.Fprintf(env.Out, "\nreport: %s\n", filepath.Join(res.Dir, reports.HTMLFile))
		fmt.Fprintf(env.Out, "replay: chaosloop replay %s\n", res.Dir)
	}
	if err != nil && cmd.Context().Err() != nil {
		// Interrupted: the runner recovered every fault and stopped the
		// handlers on its way out; say so once instead of a chain of
		// "context canceled".
		msg := "interrupted: every fault was recovered and the handlers stopped; the lab is still up ('chaosloop down' removes it)"
		if f.down {
			msg = "interrupted: every fault was recovered, the handlers stopped and the lab brought down"
		}
		if res != nil {
			msg += "; the evidence so far is in " + res.Dir
		}
		return errors.New(msg)
	}
	if err != nil {
		if res != nil {
			fmt.Fprintf(env.Err, "run directory: %s\n", res.Dir)
		}
		if errors.Is(err, lab.ErrStopped) {
			// a stop condition on a real cluster: the faults are recovered
			// and the report says what was seen until then
			fmt.Fprintf(env.Err, "chaosloop: run stopped: %v\n", err)
			return cli.Exit(cli.ExitStopped)
		}
		return err
	}
	if res.Report.ExitCode != 0 {
		return cli.Exit(res.Report.ExitCode)
	}
	return nil
}

// progress shows the run's phases; while the lab comes up, its steps
// (installs, builds, services starting: cli.Steps); during load, live
// counters: a bar on a terminal, a line every 10 s otherwise (CI logs).
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	steps    *cli.Steps // the lab's steps, until the next phase
	p        *mpb.Progress
	bar      *mpb.Bar
	status   atomic.Value // string; read by mpb's render goroutine
	lastLine time.Time
	start    time.Time
	prevAck  int64
	prevT    time.Duration
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		p.tty = true
	}
	return p
}

// Lab shows a step of the lab coming up.
func (p *progress) Lab(lp lab.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.steps == nil {
		p.steps = cli.NewStepsFrom(p.w, p.start, cli.Heartbeat)
	}
	p.steps.Lab(lp)
}

func (p *progress) closeSteps() {
	if p.steps != nil {
		p.steps.Close()
		p.steps = nil
	}
}

func (p *progress) Phase(name, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeSteps()
	if p.bar != nil && name != "load" {
		p.bar.SetCurrent(p.bar.Current())
		p.bar.Abort(false)
		p.p.Wait()
		p.bar, p.p = nil, nil
	}
	fmt.Fprintf(p.w, "[%6.1fs] %s: %s\n", time.Since(p.start).Seconds(), name, detail)
}

func (p *progress) Load(elapsed, total time.Duration, st *load.Stats, active []faults.Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ack := st.Acknowledged.Load()
	rate := 0.0
	if d := (elapsed - p.prevT).Seconds(); d > 0 {
		rate = float64(ack-p.prevAck) / d
	}
	p.prevAck, p.prevT = ack, elapsed
	var fs []string
	for _, f := range active {
		fs = append(fs, f.Action+" "+f.Target)
	}
	fault := "no fault"
	if len(fs) > 0 {
		fault = strings.Join(fs, ", ")
	}
	status := fmt.Sprintf("%4.0f committed/s  %d committed  %d rejected  %d unknown  %d dropped  in flight %d  | %s",
		rate, ack, st.Rejected.Load(), st.Unknown.Load(), st.Dropped.Load(), st.InFlight.Load(), fault)
	p.status.Store(status)
	if !p.tty {
		if time.Since(p.lastLine) >= 10*time.Second {
			p.lastLine = time.Now()
			fmt.Fprintf(p.w, "[%6.1fs] load %s/%s: %s\n", time.Since(p.start).Seconds(), elapsed.Round(time.Second), total, status)
		}
		return
	}
	if p.bar == nil {
		p.p = mpb.New(mpb.WithOutput(p.w), mpb.WithWidth(30))
		p.bar = p.p.AddBar(int64(total/time.Second),
			mpb.PrependDecorators(decor.Name("load "), decor.Elapsed(decor.ET_STYLE_GO)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				s, _ := p.status.Load().(string)
				return s
			})))
	}
	p.bar.SetCurrent(int64(elapsed / time.Second))
}

func (p *progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeSteps()
	if p.bar != nil {
		p.bar.Abort(false)
		p.p.Wait()
		p.bar, p.p = nil, nil
	}
}
