// Package up implements `chaosloop up FILE`: stand a scenario up as a lab.
package up

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns the up command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		lf cli.LabFlags
		in cli.Inputs
		kf k3sFlags
	)
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Stand a scenario up as a lab running the real replicated engines",
		Long: `Up makes every node of the scenario a host on this machine (a network
namespace wired through its racks' switches, its site's router and the WAN
links) and starts the real engines of the services placed on it: etcd,
ZooKeeper, Kafka (KRaft, or ZooKeeper mode with a zookeeper service), MariaDB
Galera for mysql (MariaDB async replication with replication: async), Redis
with Sentinel, and FerretDB over Patroni/PostgreSQL for mongodb. Missing engines are installed first (apt-get, Maven into the cache).

Up is idempotent: run again, it repairs and reuses the lab. It returns once
every service is healthy. Needs root. FILE may be given as -f FILE, or - to
read the scenario from standard input.

With --on k3s (an existing cluster; --context names it) up deploys the
scenario's node agent — a DaemonSet in namespace chaosloop, labelled with the
scenario, its image from --registry (where 'chaosloop images push' put this
binary's) — and waits until it runs on every scenario node the cluster has
and is Ready: what fault and heal --on k3s need. It does not deploy the
services nor attach to them yet. Idempotent; an agent of another scenario, or
an object of its name chaosloop did not make, is refused. Needs no root.`,
		Example: `  sudo chaosloop up scenarios/quickstart.yaml
  sudo chaosloop status quickstart
  sudo chaosloop down quickstart
  chaosloop up site.yaml --on k3s --context prod-dc --registry registry.lab:5000`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := in.Names(args, 1)
			if err != nil {
				return err
			}
			if err := kf.check(lf.On); err != nil {
				return err
			}
			if lf.On == "k3s" {
				return upK3s(cmd.Context(), env, &kf, names[0])
			}
			sc, err := cli.LoadScenario(cmd.Context(), env, names[0])
			if err != nil {
				return err
			}
			steps := cli.NewSteps(env.Err)
			p, err := lf.Provider(env, 0, steps.Lab)
			if err != nil {
				steps.Close()
				return err
			}
			start := time.Now()
			lab, err := p.Up(cmd.Context(), sc)
			steps.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "lab %s is up: %d hosts, %d services, healthy after %s.\n", lab.Name(), len(lab.Topology().Nodes), len(lab.Topology().Services), time.Since(start).Round(100*time.Millisecond))
			fmt.Fprintf(env.Out, "  chaosloop status %s    # members, roles, health\n  chaosloop down %s      # remove it\n", lab.Name(), lab.Name())
			return nil
		},
	}
	lf.Add(cmd)
	in.Add(cmd)
	kf.add(cmd)
	return cmd
}
