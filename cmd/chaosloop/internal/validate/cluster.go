package validate

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// onFlags are --on and the cluster flags of --on k3s.
type onFlags struct {
	on      string
	cluster cli.ClusterFlags
}

func (f *onFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.on, "on", "local", "where the scenario is to run: local or kind check the file alone; k3s checks the cluster --context names against it too")
	_ = cmd.RegisterFlagCompletionFunc("on", cobra.FixedCompletions([]string{"local", "kind", "k3s"}, cobra.ShellCompDirectiveNoFileComp))
	f.cluster.Add(cmd)
}

func (f *onFlags) k3s() bool { return f.on == "k3s" }

// check refuses cluster flags without --on k3s (they would be ignored)
// and several files with it (one cluster, one scenario).
func (f *onFlags) check(files []string) error {
	switch f.on {
	case "local", "kind":
		if f.cluster.Given() {
			return cli.Usagef("--kubeconfig, --context and --node-map are for --on k3s")
		}
	case "k3s":
		if len(files) != 1 {
			return cli.Usagef("--on k3s checks one scenario FILE against the cluster, not %d", len(files))
		}
	default:
		return cli.Usagef("--on must be local, kind or k3s, not %q", f.on)
	}
	return nil
}

// checkCluster checks the named cluster against a valid scenario.
func (f *onFlags) checkCluster(ctx context.Context, env *cli.Env, topo *topology.Topology) (*k3s.Report, error) {
	c, m, err := f.cluster.Connect(ctx, env, topo)
	if err != nil {
		return nil, err
	}
	return k3s.Check(ctx, env.Log, c, topo, m)
}

// writeCluster prints the cluster's findings and what fixes the drift.
func writeCluster(env *cli.Env, res Result) {
	r := res.Cluster
	if r == nil {
		return
	}
	for _, fd := range r.Findings {
		fmt.Fprintln(env.Out, fd.String())
	}
	fmt.Fprintf(env.Out, "context %s: %d node(s) checked; %d error(s), %d label drift, %d warning(s)\n",
		r.Context, r.Nodes, r.Count(k3s.Error), r.Count(k3s.Drift), r.Count(k3s.Warning))
	if r.Count(k3s.Drift) > 0 {
		fmt.Fprintf(env.Out, "'chaosloop label %s' with the same --on k3s flags fixes the drift (it shows the changes first)\n", res.File)
	}
}
