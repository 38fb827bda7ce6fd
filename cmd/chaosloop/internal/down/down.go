// Package down implements `chaosloop down [NAME] [--all]`.
package down

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/kind"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns the down command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		lf  cli.LabFlags
		ref cli.LabRef
		all bool
		kf  k3sFlags
	)
	cmd := &cobra.Command{
		Use:   "down [LAB | FILE --on k3s --context NAME]",
		Short: "Stop a lab: every process, fault, namespace and cgroup it made",
		Long: `Down stops every process of a lab, undoes its faults, and removes its network
namespaces, cgroups and state — also after chaosloop itself crashed (the state
is on disk). --all removes every chaosloop lab on this machine.

LAB is the lab's name or the scenario file it was stood up from (its name:);
without it, the only lab that is up.

With --on k3s it removes what chaosloop created on the cluster --context
names for the scenario (FILE or NAME): only objects in namespace chaosloop
labelled both app.kubernetes.io/managed-by=chaosloop and
chaosloop.io/scenario=NAME, then the namespace if chaosloop created it
(labelled) and it holds nothing else. Before deleting the node agent it
recovers the scenario's network faults and waits for every running agent to
report its rules gone (an agent that stops leaves its rules in place), then
stops the members of the services chaosloop deployed (run --registry) and
removes their files, /var/lib/chaosloop/NAME, from the nodes through the
agents. Node labels are never touched: 'chaosloop label' owns them. It lists what it would
delete and deletes it only with --yes.

Exit status: 0 down (or, --on k3s without --yes, shown); 1 a failure; 2
usage (with --on k3s: an unnamed or unknown context).`,
		Example: `  sudo chaosloop down quickstart
  sudo chaosloop down scenarios/quickstart.yaml
  sudo chaosloop down --all
  chaosloop down site.yaml --on k3s --context prod-dc --yes`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteLabs(&lf)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lf.On == "k3s" {
				if all {
					return cli.Usagef("--all is for labs on this machine, not --on k3s")
				}
				if ref.Named() {
					return cli.Usagef("down --on k3s takes the scenario as FILE or NAME, not -f or --lab")
				}
				return k3sDown(cmd.Context(), env, &kf, args)
			}
			if kf.cluster.Given() || kf.yes {
				return cli.Usagef("--kubeconfig, --context, --node-map and --yes are for --on k3s")
			}
			opts, err := lf.Options(env)
			if err != nil {
				return err
			}
			if all {
				if len(args) > 0 || ref.Named() {
					return cli.Usagef("--all takes no lab name")
				}
				// every backend's labs on this machine, whatever --on says
				kp, err := cli.KindProvider(local.Options{Root: kind.DefaultRoot, Cache: opts.Cache, Log: env.Log}, nil)
				if err != nil {
					return err
				}
				if lf.Root != "" {
					opts.Root = lf.Root
				} else {
					opts.Root = local.DefaultRoot
				}
				if err := errors.Join(local.DownAll(cmd.Context(), opts), kp.DownAll(cmd.Context())); err != nil {
					return err
				}
				fmt.Fprintln(env.Out, "every chaosloop lab on this machine is down")
				return nil
			}
			p, err := lf.Provider(env, 0, nil)
			if err != nil {
				return err
			}
			name, err := ref.Resolve(cmd.Context(), env, p, cli.Arg(args, 0))
			if err != nil {
				return err
			}
			if err := p.Down(cmd.Context(), name); err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "lab %s is down\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every chaosloop lab on this machine")
	lf.Add(cmd)
	ref.Add(cmd)
	kf.cluster.Add(cmd)
	// down never touches nodes, so it has no use for a node map
	_ = cmd.Flags().MarkHidden("node-map")
	cmd.Flags().BoolVarP(&kf.yes, "yes", "y", false, "with --on k3s: delete (without it what would be deleted is only shown)")
	return cmd
}
