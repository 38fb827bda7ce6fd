package fault

import (
	"context"
	"errors"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// defaultLifetime bounds a network fault injected by hand on a real
// cluster: its agents lift it by themselves then (see nemesis.Lifetime).
const defaultLifetime = 10 * time.Minute

// k3sFlags are fault's and heal's flags for --on k3s.
type k3sFlags struct {
	cluster  cli.ClusterFlags
	lifetime time.Duration
}

// check refuses the k3s flags where they would be ignored.
func (f *k3sFlags) check(on string) error {
	if on != "k3s" && f.cluster.Given() {
		return cli.Usagef("--kubeconfig, --context and --node-map are for --on k3s")
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
