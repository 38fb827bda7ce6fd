// Package status implements `chaosloop status [NAME]`.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns the status command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		lf     cli.LabFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show a lab's services: members, nodes, addresses, roles, health, engines",
		Long: `Status observes every service of a lab now: each member's node and address,
its role (leader, follower, primary, replica), whether it is up and healthy,
the engine and its version, and the faults in place. Without NAME, the only
lab that is up. Exit status 1 when a service is not healthy.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckFormat(format, "text", "json"); err != nil {
				return err
			}
			opts, err := lf.Options(env)
			if err != nil {
				return err
			}
			name, err := cli.LabName(opts, args)
			if err != nil {
				return err
			}
			lab, err := local.Open(cmd.Context(), opts, name)
			if err != nil {
				return err
			}
			st, err := lab.Status(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(env.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				Print(env.Out, st)
			}
			for _, s := range st.Services {
				if !s.Healthy {
					return cli.Exit(cli.ExitFail)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "text", "output format: text or json")
	lf.Add(cmd)
	return cmd
}

// Print writes a status as a table.
func Print(w io.Writer, st *local.Status) {
	fmt.Fprintf(w, "lab %s: %d hosts (state %s)\n", st.Name, st.Hosts, st.Dir)
	for _, f := range st.Faults {
		fmt.Fprintf(w, "fault in place: %s %s (since %s)\n", f.Action, f.Target, f.Since.Format("15:04:05"))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tKIND\tENGINE\tMEMBER\tNODE\tADDRESS\tROLE\tUP\tHEALTHY\tDETAIL")
	for _, s := range st.Services {
		engine := s.Engine
		if s.Version != "" {
			engine += " " + s.Version
		}
		for i, m := range s.Members {
			svc, kind, eng := "", "", ""
			if i == 0 {
				svc, kind, eng = s.Name, s.Kind, engine
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", svc, kind, eng, m.Index, m.Node, m.Addr, dash(m.Role), yes(m.Up), yes(m.Healthy), m.Detail)
		}
		if s.Error != "" {
			fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t\terror: %s\n", s.Error)
		}
	}
	tw.Flush()
	for _, s := range st.Services {
		if s.Substitute != "" {
			fmt.Fprintf(w, "note: %s (%s): %s\n", s.Name, s.Kind, s.Substitute)
		}
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
