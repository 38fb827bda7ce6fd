package down

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
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
	if f.yes && len(t.Objects) > 0 {
		if err := refusePowerFaults(ctx, c, name, args[0]); err != nil {
			return err
		}
		if err := recoverFaults(ctx, env, c, name); err != nil {
			return err
		}
		if err := downMembers(ctx, env, c, name); err != nil {
			return err
		}
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

// downMembers stops the members of the services chaosloop deployed and
// removes their files from the nodes, through the agents, before the
// agents go.
func downMembers(ctx context.Context, env *cli.Env, c *k3s.Cluster, scenario string) error {
	t, err := deploy.Down(ctx, c, scenario)
	for _, p := range t.Pods {
		fmt.Fprintf(env.Out, "stopped member pod %s/%s\n", k3s.Namespace, p)
	}
	for _, n := range t.Wiped {
		fmt.Fprintf(env.Out, "removed %s on node %s\n", deploy.Root(scenario), n)
	}
	for _, n := range t.Stranded {
		fmt.Fprintf(env.Err, "warning: node %s: no agent runs there to remove the members' files; remove %s on the node\n", n, deploy.Root(scenario))
	}
	if err != nil {
		return fmt.Errorf("the members did not all stop, or their files stay; nothing else deleted: %w", err)
	}
	return nil
}

// recoverWait bounds the wait for the agents to lift the scenario's rules
// (they apply a change within a second or two; a node under load, longer).
const recoverWait = 2 * time.Minute

// recoverFaults lifts the scenario's network faults through its agents
// before they are deleted; it refuses to go on when a running agent does
// not confirm, since deleting it would leave its node cut.
func recoverFaults(ctx context.Context, env *cli.Env, c *k3s.Cluster, scenario string) error {
	cl := &agent.Client{Kube: c.Client, Log: env.Log, Scenario: scenario}
	r, err := cl.RecoverBeforeDown(ctx, recoverWait)
	for _, n := range r.Recovered {
		fmt.Fprintf(env.Out, "recovered the network faults on node %s\n", n)
	}
	for _, n := range r.Stranded {
		fmt.Fprintf(env.Err, "warning: node %s: no agent runs there to lift its rules and thaw its frozen pods; any it applied stay until an agent runs on it again, or `chaosloop internal agent --cleanup` is run on the node\n", n)
	}
	if err != nil {
		return fmt.Errorf("the agents did not confirm their faults lifted; nothing deleted (deleting them now could leave nodes cut off): %w", err)
	}
	return nil
}

// refusePowerFaults stops down while a power fault of the scenario is in
// place: its record is what heal needs to power the nodes on again, and
// down would delete it.
func refusePowerFaults(ctx context.Context, c *k3s.Cluster, scenario, ref string) error {
	active, err := nemesis.Active(ctx, c, scenario)
	if err != nil {
		return err
	}
	var power []string
	for _, a := range active {
		if a.Action == scenarios.ActionPowerOff || a.Action == scenarios.ActionDestroy {
			power = append(power, a.Action+" "+a.Target)
		}
	}
	if len(power) > 0 {
		return fmt.Errorf("power faults are in place (%s); nothing deleted: heal them first (chaosloop heal %s --on k3s --context %s --bmc FILE), or their record goes and the nodes stay off",
			strings.Join(power, ", "), ref, c.Context)
	}
	return nil
}
