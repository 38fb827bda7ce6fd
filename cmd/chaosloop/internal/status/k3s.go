package status

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// statusK3s shows what is in place for the scenario FILE on the cluster
// --context names: its nodes, the agents and their rules, the faults
// recorded. Exit 1 when a scenario node is missing or not Ready.
func statusK3s(ctx context.Context, env *cli.Env, cf *cli.ClusterFlags, out *cli.Output, file string) error {
	if file == "" {
		return cli.Usagef("--on k3s needs the scenario FILE: its nodes are what status looks at")
	}
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return cli.Invalid(err)
	}
	c, m, err := cf.Connect(ctx, env, topo)
	if err != nil {
		return err
	}
	st, err := (&nemesis.Nemesis{Cluster: c, Topology: topo, NodeMap: m, Log: env.Log}).Status(ctx)
	if err != nil {
		return err
	}
	if out.Structured() {
		if err := out.Encode(env.Out, st); err != nil {
			return err
		}
	} else {
		PrintK3s(env.Out, st)
	}
	if !st.Healthy() {
		return cli.Exit(cli.ExitFail)
	}
	return nil
}

// PrintK3s writes a cluster's status for a scenario as tables.
func PrintK3s(w io.Writer, st *nemesis.Status) {
	fmt.Fprintf(w, "scenario %s on context %s\n", st.Scenario, st.Context)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCLUSTER NODE\tREADY\tAGENT\tRULES")
	for _, n := range st.Nodes {
		ready := "Ready"
		if !n.Ready {
			ready = n.NotReady
		}
		agent := "none"
		switch {
		case n.Agent && n.AgentError != "":
			agent = "running, error: " + n.AgentError
		case n.Agent:
			agent = "running"
		}
		var rules []string
		for _, r := range n.Rules {
			state := "pending"
			switch {
			case r.Expired:
				state = "expired"
			case r.Applied:
				state = "applied"
			}
			if r.Expires != nil {
				state += ", expires " + r.Expires.Local().Format(time.TimeOnly)
			}
			rules = append(rules, fmt.Sprintf("%s (%s)", r.ID, state))
		}
		if len(rules) == 0 {
			rules = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Node, n.ClusterNode, ready, agent, strings.Join(rules, ", "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(st.Faults) == 0 {
		fmt.Fprintln(w, "no fault in place")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "FAULT\tSINCE")
		for _, f := range st.Faults {
			fmt.Fprintf(tw, "%s %s\t%s\n", f.Action, f.Target, f.Since.Local().Format(time.DateTime))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(st.Services) == 0 {
		fmt.Fprintln(w, "no attached service (services[].attach) and none chaosloop deploys")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tMEMBER\tPOD\tNODE\tSCENARIO NODE\tREADY\tRESTARTS\tENGINE")
	for _, sv := range st.Services {
		for _, m := range sv.Members {
			ready := "Ready"
			if !m.Ready {
				ready = m.NotReady
			}
			want := m.Want
			if want == "" {
				want = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s/%s\t%s\t%s\t%s\t%d\t%s\n", sv.Service, m.Index, sv.Namespace, m.Pod, m.Node, want, ready, m.Restarts, engineState(sv.Engine, m.Index))
		}
		if len(sv.Members) == 0 {
			fmt.Fprintf(tw, "%s\t-\tno pod in %s matches %s\t\t\t\t\t\n", sv.Service, sv.Namespace, sv.Selector)
		}
	}
	tw.Flush()
	for _, sv := range st.Services {
		switch {
		case sv.Engine != nil && sv.Engine.Writable:
			fmt.Fprintf(w, "%s: %s takes writes\n", sv.Service, strings.TrimSpace(sv.Engine.Engine+" "+sv.Engine.Version))
		case sv.Engine != nil:
			fmt.Fprintf(w, "%s: %s does NOT take writes\n", sv.Service, strings.TrimSpace(sv.Engine.Engine+" "+sv.Engine.Version))
		case sv.NotProbed != "":
			fmt.Fprintf(w, "%s: not probed: %s\n", sv.Service, sv.NotProbed)
		}
		for _, f := range sv.Findings {
			fmt.Fprintf(w, "%s: %s\n", sv.Service, f)
		}
	}
}

// engineState is member i as its engine's probe saw it: its role and
// whether it is healthy, "timed out" when the probe had no answer in
// time (no evidence either way), "-" when it was not probed.
func engineState(st *engines.Status, i int) string {
	if st == nil {
		return "-"
	}
	for _, m := range st.Members {
		if m.Index != i {
			continue
		}
		switch {
		case m.TimedOut:
			return "timed out"
		case !m.Up:
			return "down: " + m.Detail
		}
		role := m.Role
		if role == "" {
			role = "member"
		}
		if !m.Healthy {
			return role + ", unhealthy: " + m.Detail
		}
		return role + ", healthy"
	}
	return "-"
}
