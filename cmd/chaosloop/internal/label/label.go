// Package label implements `chaosloop label FILE --on k3s`: the cluster's
// nodes labelled with the scenario's topology, after showing the changes.
package label

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// Result is the JSON form of a label run.
type Result struct {
	Plan *k3s.Plan `json:"plan"`
	// Applied: the plan was carried out (--yes).
	Applied bool `json:"applied"`
	// Unlabelled are the scenario nodes without a cluster node.
	Unlabelled []k3s.Finding `json:"unlabelled"`
}

type options struct {
	on      string
	cluster cli.ClusterFlags
	yes     bool
	out     cli.Output
	in      cli.Inputs
}

// NewCommand returns the label command.
func NewCommand(env *cli.Env) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "label FILE --on k3s --context NAME",
		Short: "Label a cluster's nodes with the scenario's sites, racks, feeds, switches and pools",
		Long: `Label gives every scenario node's cluster node (the same name, or the one
--node-map names) the labels chaosloop places by: topology.kubernetes.io/region
(the site) and topology.kubernetes.io/zone (site-rack), chaosloop.io/site,
chaosloop.io/rack, feed.chaosloop.io/FEED, switch.chaosloop.io/SWITCH and
pool.chaosloop.io/POOL (lower case). It adds and changes those keys, removes
a feed, switch or pool key the scenario no longer gives the node, and never
touches any other label.

It prints the changes first (+ added, ~ changed, - removed) and makes them
only with --yes; without it nothing is changed. A second run finds nothing
to change. The context must be named with --context: the kubeconfig's
current context is never used unless named.

Exit status: 0 labelled, nothing to change, or changes shown without --yes;
1 a scenario node has no cluster node (the others are labelled), or the
cluster cannot be read or patched; 2 invalid file, node map or usage (an
unnamed or unknown context).`,
		Example: `  chaosloop label site.yaml --on k3s --context prod-dc
  chaosloop label site.yaml --on k3s --context prod-dc --node-map nodes.yaml --yes
  chaosloop label site.yaml --on k3s --kubeconfig ~/.kube/lab --context lab -o json`,
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
	cmd.Flags().StringVar(&o.on, "on", "", "the backend whose nodes are labelled: k3s (required; kind labels its nodes when it makes them)")
	_ = cmd.RegisterFlagCompletionFunc("on", cobra.FixedCompletions([]string{"k3s"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().BoolVarP(&o.yes, "yes", "y", false, "make the changes (without it they are only shown)")
	return cmd
}

func (o *options) checkFlags(args []string) (string, error) {
	if err := o.out.Check(); err != nil {
		return "", err
	}
	if o.on != "k3s" {
		return "", cli.Usagef("label works on --on k3s only (the kind backend labels its nodes when it creates them), not --on %q", o.on)
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
		return err
	}
	c, m, err := o.cluster.Connect(ctx, env, topo)
	if err != nil {
		return err
	}
	report, err := k3s.Check(ctx, env.Log, c, topo, m)
	if err != nil {
		return err
	}
	res := Result{Plan: report.Plan, Unlabelled: []k3s.Finding{}}
	for _, f := range report.Findings {
		if f.Check == "exists" {
			res.Unlabelled = append(res.Unlabelled, f)
		}
	}
	if o.yes && !res.Plan.Empty() {
		if err := k3s.Apply(ctx, env.Log, c, res.Plan); err != nil {
			return err
		}
		res.Applied = true
	}
	if err := write(env, o, res); err != nil {
		return err
	}
	if len(res.Unlabelled) > 0 {
		return cli.Exit(cli.ExitFail)
	}
	return nil
}

// write prints the plan (the diff), then what became of it.
func write(env *cli.Env, o *options, res Result) error {
	if o.out.Structured() {
		return o.out.Encode(env.Out, res)
	}
	res.Plan.WriteText(env.Out)
	switch {
	case res.Applied:
		fmt.Fprintf(env.Out, "labelled %d node(s)\n", len(res.Plan.Actions))
	case !res.Plan.Empty():
		fmt.Fprintln(env.Out, "nothing changed; re-run with --yes to make these changes")
	}
	for _, f := range res.Unlabelled {
		fmt.Fprintf(env.Err, "not labelled: scenario node %s: node/%s: %s\n", f.Node, f.ClusterNode, f.Message)
	}
	return nil
}
