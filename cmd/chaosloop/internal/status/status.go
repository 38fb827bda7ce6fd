// Package status implements `chaosloop status [NAME]`.
package status

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/lab"
)

// NewCommand returns the status command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		lf  cli.LabFlags
		ref cli.LabRef
		out cli.Output
		cf  cli.ClusterFlags
	)
	cmd := &cobra.Command{
		Use:   "status [LAB]",
		Short: "Show a lab's services: members, nodes, addresses, roles, health, engines",
		Long: `Status observes every service of a lab now: each member's node and address,
its role (leader, follower, primary, replica), whether it is up and healthy,
the engine and its version, and the faults in place (-o wide adds the engine,
address and detail columns). LAB is the lab's name or the scenario file it was
stood up from; without it, the only lab that is up. Exit status 1 when a
service is not healthy.

With --on k3s (a real cluster; --context names it) LAB is the scenario FILE:
status shows each scenario node's cluster node and whether it is Ready,
whether the scenario's node agent runs there, the rules chaosloop wants on
it (applied, pending, or lifted at their expiry), and the faults recorded in
place. It changes nothing. Exit status 1 when a scenario node is missing or
not Ready.`,
		Example: `  sudo chaosloop status
  sudo chaosloop status scenarios/quickstart.yaml -o wide
  sudo chaosloop status quickstart -o json | jq '.services[] | select(.healthy | not)'
  chaosloop status site.yaml --on k3s --context prod-dc`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteLabs(&lf)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			if lf.On != "k3s" && cf.Given() {
				return cli.Usagef("--kubeconfig, --context and --node-map are for --on k3s")
			}
			if lf.On == "k3s" {
				return statusK3s(cmd.Context(), env, &cf, &out, cli.Arg(args, 0))
			}
			p, err := lf.Provider(env, 0, nil)
			if err != nil {
				return err
			}
			name, err := ref.Resolve(cmd.Context(), env, p, cli.Arg(args, 0))
			if err != nil {
				return err
			}
			l, err := p.Open(cmd.Context(), name)
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context())
			if err != nil {
				return err
			}
			if out.Structured() {
				if err := out.Encode(env.Out, st); err != nil {
					return err
				}
			} else {
				Print(env.Out, st, out.Format == cli.FormatWide)
			}
			for _, s := range st.Services {
				if !s.Healthy {
					return cli.Exit(cli.ExitFail)
				}
			}
			return nil
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatWide, cli.FormatJSON, cli.FormatYAML)
	lf.Add(cmd)
	ref.Add(cmd)
	cf.Add(cmd)
	return cmd
}

// Print writes a status as a table; wide adds the engine, address and
// detail columns.
func Print(w io.Writer, st *lab.Status, wide bool) {
	fmt.Fprintf(w, "lab %s: %d hosts (state %s)\n", st.Name, st.Hosts, st.Dir)
	for _, f := range st.Faults {
		fmt.Fprintf(w, "fault in place: %s %s (since %s)\n", f.Action, f.Target, f.Since.Format("15:04:05"))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(c statusRow) {
		cols := []string{c.svc, c.kind, c.member, c.node, c.role, c.up, c.healthy, c.detail}
		if wide {
			cols = []string{c.svc, c.kind, c.engine, c.writable, c.member, c.name, c.node, c.addr, c.role, c.up, c.healthy, c.detail}
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	row(statusRow{"SERVICE", "KIND", "ENGINE", "WRITABLE", "MEMBER", "NAME", "NODE", "ADDRESS", "ROLE", "UP", "HEALTHY", "DETAIL"})
	for _, s := range st.Services {
		engine := s.Engine
		if s.Version != "" {
			engine += " " + s.Version
		}
		for i, m := range s.Members {
			r := statusRow{member: strconv.Itoa(m.Index), name: m.Name, node: m.Node, addr: m.Addr, role: dash(m.Role), up: yes(m.Up), healthy: yes(m.Healthy), detail: m.Detail}
			if i == 0 {
				r.svc, r.kind, r.engine, r.writable = s.Name, s.Kind, engine, yes(s.Writable)
			}
			row(r)
		}
	}
	tw.Flush()
	for _, s := range st.Services {
		if s.Error != "" {
			fmt.Fprintf(w, "error: %s: %s\n", s.Name, s.Error)
		}
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

// statusRow is one line of the status table, every column; the default
// output shows some of them, -o wide all.
type statusRow struct {
	svc, kind, engine, writable, member, name, node, addr, role, up, healthy, detail string
}
