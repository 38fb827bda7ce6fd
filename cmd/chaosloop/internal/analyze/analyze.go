// Package analyze implements `chaosloop analyze FILE`: every failure domain
// (and with --depth 2 every pair) judged against every service.
package analyze

import (
	"bytes"
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// NewCommand returns the analyze command.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		out   cli.Output
		in    cli.Inputs
		depth int
		limit int
	)
	cmd := &cobra.Command{
		Use:   "analyze FILE",
		Short: "Judge every service under every single (and with --depth 2, double) failure",
		Long: `Analyze applies each failure domain of the scenario — every site, rack, power
feed and node losing power, every switch and WAN link cut — and judges each
service: ok, degraded, read-only or down (spec section 5). With --depth 2 every
pair of domains is judged too.

The JSON output (--format json) is a stable contract read by other programs.
The text output is a matrix of failures by services, the worst first; a '*'
marks a verdict where acknowledged writes may be lost.

Exit status: 0 when every service survives every failure (no read-only or
down), 1 when not, 2 on an invalid file or usage error.`,
		Example: `  chaosloop analyze scenarios/three-site.yaml
  chaosloop analyze scenarios/three-site.yaml --depth 2 -o json > analysis.json
  chaosloop analyze scenarios/three-site.yaml --depth 2 --limit 10
  chaosloop init --sites 2 | chaosloop analyze -`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			files, err := in.Names(args, 1)
			if err != nil {
				return err
			}
			if depth != 1 && depth != 2 {
				return cli.Usagef("--depth must be 1 or 2, not %d", depth)
			}
			if limit < 0 {
				return cli.Usagef("--limit must not be negative")
			}
			// Analysis cleans nothing up: Ctrl-C abandons it at once.
			return cli.Interruptible(cmd.Context(), func() error { return run(cmd.Context(), env, files[0], out.Format, depth, limit) })
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	in.Add(cmd)
	cmd.Flags().IntVar(&depth, "depth", 1, "1: single failures; 2: also every pair of failures")
	_ = cmd.RegisterFlagCompletionFunc("depth", cobra.FixedCompletions([]string{"1", "2"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().IntVar(&limit, "limit", 0, "text only: show at most this many failures, the worst first (0: all)")
	return cmd
}

func run(ctx context.Context, env *cli.Env, file, format string, depth, limit int) error {
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	t, err := topology.Build(sc)
	if err != nil {
		return err
	}
	// Failures are judged as they are written: memory does not grow with
	// their number (a depth-2 analysis of thousands of nodes has hundreds of
	// millions).
	a := t.NewAnalysis(depth)
	switch format {
	case cli.FormatJSON:
		err = a.WriteJSON(ctx, env.Out)
	case cli.FormatYAML:
		// YAML is the JSON contract re-encoded, so it is held in memory
		// whole: use -o json for large depth-2 analyses.
		var buf bytes.Buffer
		if err = a.WriteJSON(ctx, &buf); err == nil {
			err = cli.JSONToYAML(env.Out, buf.Bytes())
		}
	default:
		err = WriteText(ctx, env.Out, a, env.Color, limit)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("analyze interrupted: %w", context.Cause(ctx))
		}
		return err
	}
	if !a.SurvivesAll {
		return cli.Exit(cli.ExitFail)
	}
	return nil
}
