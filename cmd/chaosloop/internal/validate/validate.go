// Package validate implements `chaosloop validate FILE`: structural errors
// (exit 2) and the seed document's deployment lint (exit 1 on an error
// finding).
package validate

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
	"github.com/chaosloop/chaosloop/topology/lint"
)

// Result is the JSON form of a validation.
type Result struct {
	File  string `json:"file"`
	Valid bool   `json:"valid"`
	// Errors are the structural problems listed (at most
	// scenarios.MaxErrors); Unlisted counts those found beyond them.
	Errors   []*scenarios.Error `json:"errors"`
	Unlisted int                `json:"unlisted"`
	Findings []lint.Finding     `json:"findings"`
	Summary  Summary            `json:"summary"`
	// Cluster is the --on k3s cluster checked against the scenario.
	Cluster *k3s.Report `json:"cluster,omitempty"`
	// topo is the valid scenario's topology, for the cluster check.
	topo *topology.Topology
	// more is the text output's last line of a capped list, "and N more
	// problems, not listed", at the first problem left out.
	more *scenarios.Error
}

// Summary counts findings by severity.
type Summary struct {
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Info     int `json:"info"`
}

// NewCommand returns the validate command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		out cli.Output
		in  cli.Inputs
		on  onFlags
	)
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files and lint them against the seed's deployment recommendations",
		Long: `Validate decodes each scenario file strictly and reports every structural
problem with file:line:column (exit 2). A valid file is then linted against the
Mojaloop on-premises deployment recommendations: pool and node sizes, replica
counts, Kafka replication, anti-affinity across racks, power feeds and
switches, pools that must not be merged, and sites holding a quorum majority.

Files are FILE arguments or -f FILE; - reads standard input. With several
files every file is checked and reported; -o json then prints an array of
results, one per file. -o wide adds each finding's field path.

With --on k3s (one FILE, --context required) the cluster is checked against
the scenario too: every scenario node's cluster node (the same name, or the
one --node-map names) exists, is Ready and has the cores and memory the
scenario gives it (errors); it carries the scenario's topology and
chaosloop labels (drift, which 'chaosloop label' fixes); it is not cordoned
nor tainted for a pool it lacks (warnings). Nothing is changed.

Exit status: 0 when no finding is an error (and, with --on k3s, no node has
an error or label drift), 1 when one is (or the cluster cannot be read), 2
when a file is invalid (or cannot be read), or on a usage error (an unnamed
or unknown context, an invalid node map).`,
		Example: `  chaosloop validate scenarios/three-site.yaml
  chaosloop validate scenarios/*.yaml
  chaosloop validate -o json scenarios/reference.yaml
  chaosloop init --sites 2 | chaosloop validate -
  chaosloop validate site.yaml --on k3s --context prod-dc --node-map nodes.yaml`,
		ValidArgsFunction: cli.AnyArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			files, err := in.Names(args, 0)
			if err != nil {
				return err
			}
			if err := on.check(files); err != nil {
				return err
			}
			// Decoding, linting and reading the cluster do not clean
			// anything up: Ctrl-C abandons them at once.
			return cli.Interruptible(cmd.Context(), func() error { return run(cmd.Context(), env, files, &out, &on) })
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatWide, cli.FormatJSON, cli.FormatYAML)
	in.Add(cmd)
	on.add(cmd)
	return cmd
}

func run(ctx context.Context, env *cli.Env, files []string, out *cli.Output, on *onFlags) error {
	results := make([]Result, 0, len(files))
	for _, file := range files {
		res, err := check(ctx, env, file)
		if err != nil {
			return err
		}
		if on.k3s() && res.Valid {
			if res.Cluster, err = on.checkCluster(ctx, env, res.topo); err != nil {
				return err
			}
		}
		results = append(results, res)
		if !out.Structured() {
			writeText(env, res, out.Format == cli.FormatWide)
		}
	}
	if out.Structured() {
		var v any = results
		if len(results) == 1 {
			v = results[0]
		}
		if err := out.Encode(env.Out, v); err != nil {
			return err
		}
	}
	code := cli.ExitOK
	for _, res := range results {
		switch {
		case !res.Valid:
			code = cli.ExitInvalid
		case (res.Summary.Errors > 0 || res.Cluster.Failed()) && code == cli.ExitOK:
			code = cli.ExitFail
		}
	}
	if code != cli.ExitOK {
		return cli.Exit(code)
	}
	return nil
}

// check validates one file; a file that cannot be read is an invalid one,
// so that the others are still checked.
func check(ctx context.Context, env *cli.Env, file string) (Result, error) {
	display, sc, err := cli.ParseInput(ctx, env, file)
	res := Result{File: display, Errors: []*scenarios.Error{}, Findings: []lint.Finding{}}
	var serrs scenarios.Errors
	switch {
	case ctx.Err() != nil:
		return res, cli.Interrupted(ctx)
	case errors.As(err, &serrs):
		listed, unlisted := serrs.Listed()
		res.Errors, res.Unlisted = listed, unlisted
		if unlisted > 0 {
			res.more = serrs[len(serrs)-1]
		}
	case err != nil:
		res.Errors = []*scenarios.Error{{File: display, Msg: err.Error()}}
	}
	if sc == nil {
		return res, nil
	}
	t, err := topology.Build(sc)
	if err != nil {
		return res, err
	}
	res.topo = t
	res.Findings, err = lint.CheckContext(ctx, t)
	if err != nil {
		return res, err
	}
	res.Valid = true
	for _, f := range res.Findings {
		switch f.Severity {
		case lint.Error:
			res.Summary.Errors++
		case lint.Warning:
			res.Summary.Warnings++
		default:
			res.Summary.Info++
		}
	}
	return res, nil
}

func writeText(env *cli.Env, res Result, wide bool) {
	for _, e := range res.Errors {
		fmt.Fprintln(env.Err, e.Error())
	}
	if res.more != nil {
		fmt.Fprintln(env.Err, res.more.Error())
	}
	for _, f := range res.Findings {
		line := f.String()
		if wide && f.Path != "" {
			line += " (at " + f.Path + ")"
		}
		fmt.Fprintln(env.Out, line)
	}
	if res.Valid {
		fmt.Fprintf(env.Out, "%s: valid; %d error(s), %d warning(s), %d info\n", res.File, res.Summary.Errors, res.Summary.Warnings, res.Summary.Info)
		writeCluster(env, res)
	} else {
		fmt.Fprintf(env.Err, "%s: %s\n", res.File, invalidSummary(res))
	}
}

// invalidSummary counts the problems, saying when more were found than
// listed.
func invalidSummary(res Result) string {
	switch n := len(res.Errors); {
	case res.Unlisted > 0:
		return fmt.Sprintf("invalid: %d problems shown, %d more found but not listed", n, res.Unlisted)
	case n == 1:
		return "invalid: 1 problem"
	default:
		return fmt.Sprintf("invalid: %d problems", n)
	}
}
