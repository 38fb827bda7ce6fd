// Package plan implements `chaosloop plan FILE --on k3s`: everything a
// run of the scenario would do to a cluster, shown without doing any of
// it.
package plan

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

type options struct {
	on      string
	cluster cli.ClusterFlags
	deploy  cli.DeployFlags
	bmc     string
	seed    uint64
	out     cli.Output
	in      cli.Inputs
}

// NewCommand returns the plan command.
func NewCommand(env *cli.Env) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "plan FILE --on k3s --context NAME",
		Short: "Show every object a run would create on a cluster and every action it would take, changing nothing",
		Long: `Plan reads the cluster's nodes and prints what 'chaosloop run' would do there:
the node labels 'chaosloop label' would change; the objects it would create,
all in namespace chaosloop and labelled app.kubernetes.io/managed-by=chaosloop
and chaosloop.io/scenario=NAME (what 'chaosloop down --on k3s' removes); and
each fault in schedule order (its service members drawn with --seed, as run
draws them) with what carries it out on each cluster node: a BMC power cycle
(power-off, destroy), the node agent's rules (isolate, latency), or the
member's pod (kill, pause).

Plan only reads the cluster (it lists nodes); it never creates, changes or
deletes anything. The context must be named with --context: the
kubeconfig's current context is never used unless named.

Exit status: 0 planned; 1 the cluster cannot be read; 2 invalid file, node
map, BMC inventory or usage (an unnamed or unknown context, --on other than
k3s), or a power fault on a node the BMC inventory lacks.`,
		Example: `  chaosloop plan site.yaml --on k3s --context prod-dc --bmc bmc.yaml
  chaosloop plan site.yaml --on k3s --context prod-dc --node-map nodes.yaml --seed 7 -o yaml`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := o.checkFlags(args)
			if err != nil {
				return err
			}
			return run(cmd.Context(), env, &o, file)
		},
	}
	o.out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	o.in.Add(cmd)
	o.cluster.Add(cmd)
	o.deploy.Add(cmd)
	cmd.Flags().StringVar(&o.on, "on", "", "the backend planned for: k3s (required; a local or kind lab is made from scratch and needs no plan)")
	_ = cmd.RegisterFlagCompletionFunc("on", cobra.FixedCompletions([]string{"k3s"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().StringVar(&o.bmc, "bmc", "", "a YAML `FILE` of the nodes' BMCs (Redfish or IPMI), needed by power-off and destroy")
	_ = cmd.MarkFlagFilename("bmc", "yaml", "yml")
	cmd.Flags().Uint64Var(&o.seed, "seed", 0, "seed of the fault members' draw, as run's --seed")
	return cmd
}

func (o *options) checkFlags(args []string) (string, error) {
	if err := o.out.Check(); err != nil {
		return "", err
	}
	if o.on != "k3s" {
		return "", cli.Usagef("plan works on --on k3s only (a local or kind lab is made from scratch by up or run), not --on %q", o.on)
	}
	if err := o.deploy.Check(o.on); err != nil {
		return "", err
	}
	files, err := o.in.Names(args, 1)
	if err != nil {
		return "", err
	}
	return files[0], nil
}

func run(ctx context.Context, env *cli.Env, o *options, file string) error {
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return cli.Invalid(err)
	}
	inv, err := cli.LoadBMC(ctx, env, o.bmc)
	if err != nil {
		return err
	}
	c, m, err := o.cluster.Connect(ctx, env, topo)
	if err != nil {
		return err
	}
	p, err := k3s.PlanRun(ctx, env.Log, c, k3s.RunPlanInput{Topology: topo, NodeMap: m, BMC: inv, Seed: o.seed,
		Deployed: deploy.PlanObjects(topo, m, o.deploy.Image(env, local.DefaultCache), o.deploy.PortOffset,
			k3slab.Drives(topo, o.deploy.Registry != "") == "")})
	var noBMC *k3s.NoBMCError
	switch {
	case errors.As(err, &noBMC):
		return cli.Invalid(err)
	case err != nil:
		return err
	}
	if o.out.Structured() {
		return o.out.Encode(env.Out, p)
	}
	return p.WriteText(env.Out)
}
