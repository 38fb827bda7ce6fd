// Package enginescmd implements `chaosloop engines`: what the local lab
// runs, whether it is installed here, and installing it.
package enginescmd

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns the engines command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		lf      cli.LabFlags
		out     cli.Output
		install bool
	)
	cmd := &cobra.Command{
		Use:   "engines",
		Short: "List the engines the local lab runs, their versions and where they come from; --install installs them",
		Long: `Engines lists, per engine of the local lab, the scenario kinds it stands for,
where it comes from (Debian packages, Maven Central, a Go module built here),
whether it is installed and its version. 'up' installs what a scenario needs on
first use; --install installs every engine now (with progress).
'chaosloop version' lists the pinned versions without looking at the machine.`,
		Example: `  chaosloop engines
  sudo chaosloop engines --install
  chaosloop engines -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			opts, err := lf.Options(env)
			if err != nil {
				return err
			}
			if install {
				steps := cli.NewSteps(env.Err)
				opts.Progress = steps.Lab
				err := local.InstallEngines(cmd.Context(), opts)
				steps.Close()
				if err != nil {
					return err
				}
			}
			infos := local.Engines(cmd.Context(), opts)
			if out.Structured() {
				return out.Encode(env.Out, infos)
			}
			tw := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ENGINE\tKINDS\tINSTALLED\tVERSION\tSOURCE")
			for _, i := range infos {
				inst := "yes"
				if !i.Installed {
					inst = "no"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Engine, i.Kinds, inst, i.Version, i.Source)
			}
			return tw.Flush()
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	cmd.Flags().BoolVar(&install, "install", false, "install every engine now")
	lf.Add(cmd)
	return cmd
}
