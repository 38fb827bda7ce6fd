package down

import (
	"context"
	"fmt"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// k3sFlags are down's flags for --on k3s.
type k3sFlags struct {
	cluster cli.ClusterFlags
	yes     bool
}

// k3sDown removes what chaosloop created on the cluster for the scenario:
// shown first, deleted only with --yes.
func k3sDown(ctx context.Context, env *cli.Env, f *k3sFlags, args []string) error {
	if len(args) != 1 {
		return cli.Usagef("down --on k3s needs the scenario: its FILE or NAME")
	}
	if f.cluster.NodeMap != "" {
		return cli.Usagef("down --on k3s takes no --node-map: it never touches nodes")
	}
	name, err := cli.ScenarioName(env, args[0])
	if err != nil {
		return err
	}
	c, err := k3s.Connect(env.Log, k3s.Access{Kubeconfig: f.cluster.Kubeconfig, Context: f.cluster.Context})
	switch {
	case k3s.IsContextError(err):
		return cli.Usagef("%v", err)
	case err != nil:
		return cli.Invalid(err)
	}
	t, err := k3s.PlanDown(ctx, env.Log, c, name)
	if err != nil {
		return err
	}
	if f.yes && (len(t.Objects) > 0 || t.DeleteNamespace) {
		err = t.Apply(ctx, env.Log, c)
	}
	t.WriteText(env.Out)
	if err != nil {
		return err
	}
	if !f.yes && (len(t.Objects) > 0 || t.DeleteNamespace) {
		fmt.Fprintln(env.Out, "nothing deleted; re-run with --yes to delete these")
	}
	return nil
}
