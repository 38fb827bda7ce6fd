package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/guard"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/topology"
)

// defaultLifetime bounds a network fault injected by hand on a real
// cluster: its agents lift it by themselves then (see nemesis.Lifetime).
const defaultLifetime = 10 * time.Minute

// k3sFlags are fault's and heal's flags for --on k3s.
type k3sFlags struct {
	cluster   cli.ClusterFlags
	lifetime  time.Duration
	hold      bool
	apiBudget time.Duration
}

// check refuses the k3s flags where they would be ignored.
func (f *k3sFlags) check(on string) error {
	if on != "k3s" && f.cluster.Given() {
		return cli.Usagef("--kubeconfig, --context and --node-map are for --on k3s")
	}
	if on != "k3s" && f.hold {
		return cli.Usagef("--hold is for --on k3s")
	}
	if f.hold && f.apiBudget <= 0 {
		return cli.Usagef("--api-budget must be positive")
	}
	return nil
}

// k3sNemesis is the scenario's faults on the cluster --context names.
func k3sNemesis(ctx context.Context, env *cli.Env, lf *cli.LabFlags, f *k3sFlags, file string) (*nemesis.Nemesis, error) {
	if file == "" {
		return nil, cli.Usagef("--on k3s needs the scenario FILE before ACTION TARGET: the faults are resolved on its topology")
	}
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return nil, err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, cli.Invalid(err)
	}
	inv, err := cli.LoadBMC(ctx, env, lf.BMC)
	if err != nil {
		return nil, err
	}
	c, m, err := f.cluster.Connect(ctx, env, topo)
	if err != nil {
		return nil, err
	}
	return &nemesis.Nemesis{Cluster: c, Topology: topo, NodeMap: m, BMC: inv, Log: env.Log, Lifetime: f.lifetime}, nil
}

// k3sErr makes a power fault without a BMC a usage error (2), as plan's.
func k3sErr(err error) error {
	var noBMC *k3s.NoBMCError
	if errors.As(err, &noBMC) {
		return cli.Invalid(err)
	}
	return err
}

// hold keeps an injected fault in place for its --for while the guard
// watches the cluster, then recovers it. Ctrl-C recovers it too (a second
// one leaves it to the agents' expiry). A stop condition recovers every
// fault of the scenario, since something outside the plan went wrong.
func hold(ctx context.Context, env *cli.Env, n *nemesis.Nemesis, af lab.Injected, f *k3sFlags) error {
	faults, err := n.ActiveFaults(ctx)
	if err != nil {
		return err
	}
	end := af.Since.Add(f.lifetime)
	fmt.Fprintf(env.Out, "%s %s: in place on context %s; holding until %s (--for %s), watching the stop conditions; Ctrl-C recovers it\n",
		af.Action, af.Target, n.Cluster.Context, end.Local().Format(time.TimeOnly), f.lifetime)
	ch := &changes{out: env.Out}
	g := &guard.Guard{Cluster: n.Cluster, Topology: n.Topology, NodeMap: n.NodeMap, Log: env.Log, APIBudget: f.apiBudget,
		Faults: func() []lab.Injected { return faults },
		Looked: ch.look}
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	werr := g.Watch(wctx)
	// the fault ends however the hold did: with a context neither the
	// deadline nor an interrupt has cancelled
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*nemesis.DefaultWait)
	defer rcancel()
	var stop *guard.Stop
	if errors.As(werr, &stop) {
		fmt.Fprintf(env.Err, "chaosloop: stop condition at %s: %s\n", stop.At.Local().Format(time.TimeOnly), stop.Reason)
		if err := n.RecoverAll(rctx); err != nil {
			fmt.Fprintf(env.Err, "chaosloop: not every fault recovered: %v\n", err)
			fmt.Fprintf(env.Err, "chaosloop: the agents lift the network faults by themselves at %s at the latest; heal the rest when the API server answers\n",
				end.Local().Format(time.TimeOnly))
			return cli.Exit(cli.ExitStopped)
		}
		fmt.Fprintln(env.Err, "chaosloop: every fault of the scenario recovered")
		return cli.Exit(cli.ExitStopped)
	}
	if err := n.Recover(rctx, af.Fault); err != nil {
		return fmt.Errorf("%s %s: not recovered (the agents lift network rules by themselves at %s): %w",
			af.Action, af.Target, end.Local().Format(time.TimeOnly), err)
	}
	fmt.Fprintf(env.Out, "%s %s: recovered\n", af.Action, af.Target)
	if ctx.Err() != nil {
		return cli.Interrupted(ctx)
	}
	return nil
}

// changes prints what the guard's looks see change: each node that turns
// NotReady or Ready again, the API server going and coming back, once.
type changes struct {
	out      io.Writer
	started  bool
	apiDown  bool
	notReady map[string]string
}

func (c *changes) look(l guard.Look) {
	at := l.At.Local().Format(time.TimeOnly)
	if !c.started && l.Nodes > 0 {
		c.started, c.notReady = true, map[string]string{}
		fmt.Fprintf(c.out, "%s  watching %d nodes: one outside the faults NotReady, or the API server silent beyond its budget, stops the fault\n", at, l.Nodes)
	}
	if l.APIDown > 0 {
		if !c.apiDown {
			c.apiDown = true
			fmt.Fprintf(c.out, "%s  the API server does not answer\n", at)
		}
		return
	}
	if c.apiDown {
		c.apiDown = false
		fmt.Fprintf(c.out, "%s  the API server answers again\n", at)
	}
	for _, node := range slices.Sorted(maps.Keys(l.NotReady)) {
		if c.notReady[node] != l.NotReady[node] {
			c.notReady[node] = l.NotReady[node]
			fmt.Fprintf(c.out, "%s  node/%s NotReady (%s)\n", at, node, l.NotReady[node])
		}
	}
	for _, node := range slices.Sorted(maps.Keys(c.notReady)) {
		if _, still := l.NotReady[node]; !still {
			delete(c.notReady, node)
			fmt.Fprintf(c.out, "%s  node/%s Ready\n", at, node)
		}
	}
}
