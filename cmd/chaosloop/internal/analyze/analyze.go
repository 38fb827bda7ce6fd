// Package analyze implements `chaosloop analyze FILE`: every failure domain
// (and with --depth 2 every pair) judged against every service.
package analyze

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

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
	a := t.Analyze(depth)
	switch format {
	case cli.FormatJSON:
		err = a.WriteJSON(env.Out)
	case cli.FormatYAML:
		// YAML is the JSON contract re-encoded, so it is held in memory
		// whole: use -o json for large depth-2 analyses.
		var buf bytes.Buffer
		if err = a.WriteJSON(&buf); err == nil {
			err = cli.JSONToYAML(env.Out, buf.Bytes())
		}
	default:
		err = WriteText(env.Out, a, env.Color, limit)
	}
	if err != nil {
		return err
	}
	if !a.SurvivesAll {
		return cli.Exit(cli.ExitFail)
	}
	return nil
}

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiMag    = "\x1b[35m"
	ansiRed    = "\x1b[1;31m"
)

var verdictColor = map[topology.Verdict]string{
	topology.OK: ansiGreen, topology.Degraded: ansiYellow, topology.ReadOnly: ansiMag, topology.Down: ansiRed,
}

// WriteText prints the failures × services matrix, the worst failures first
// (then those hurting more services), and a summary.
func WriteText(w io.Writer, a *Analysis, color bool, limit int) error {
	bw := bufio.NewWriter(w)
	t := a.Topology
	order := make([]int, len(a.Failures))
	for i := range order {
		order[i] = i
	}
	severity := func(f *topology.Failure) (topology.Verdict, int) {
		worst, hurt := topology.OK, 0
		for _, j := range f.Judgements {
			worst = max(worst, j.Verdict)
			hurt += int(j.Verdict)
		}
		return worst, hurt
	}
	slices.SortStableFunc(order, func(x, y int) int {
		wx, hx := severity(&a.Failures[x])
		wy, hy := severity(&a.Failures[y])
		return cmp.Or(cmp.Compare(wy, wx), cmp.Compare(hy, hx))
	})
	if limit > 0 && limit < len(order) {
		order = order[:limit]
	}
	rows := make([][]string, len(order))
	domW := len("FAILURE")
	for r, k := range order {
		d := strings.Join(a.DomainPaths(&a.Failures[k]), " + ")
		rows[r] = []string{d}
		domW = max(domW, len(d))
	}
	colW := make([]int, len(t.Services))
	for i, sv := range t.Services {
		colW[i] = max(len(sv.Name), len("read-only*"))
	}
	fmt.Fprintf(bw, "%-*s", domW, "FAILURE")
	for i, sv := range t.Services {
		fmt.Fprintf(bw, "  %-*s", colW[i], sv.Name)
	}
	fmt.Fprintln(bw)
	for r, k := range order {
		f := &a.Failures[k]
		fmt.Fprintf(bw, "%-*s", domW, rows[r][0])
		for i, j := range f.Judgements {
			cell := j.Verdict.String()
			if j.LossPossible {
				cell += "*"
			}
			pad := strings.Repeat(" ", colW[i]-len(cell))
			if color {
				cell = verdictColor[j.Verdict] + cell + ansiReset
			}
			fmt.Fprintf(bw, "  %s%s", cell, pad)
		}
		fmt.Fprintln(bw)
	}
	counts := map[topology.Verdict]int{}
	for k := range a.Failures {
		w, _ := severity(&a.Failures[k])
		counts[w]++
	}
	fmt.Fprintln(bw)
	if limit > 0 && limit < len(a.Failures) {
		fmt.Fprintf(bw, "(showing the %d worst of %d failures)\n", limit, len(a.Failures))
	}
	fmt.Fprintf(bw, "%s: %d failures judged at depth %d against %d services: %d leave every service ok, %d degrade some, %d make some read-only, %d take some down.\n",
		t.Name, len(a.Failures), a.Depth, len(t.Services), counts[topology.OK], counts[topology.Degraded], counts[topology.ReadOnly], counts[topology.Down])
	if a.SurvivesAll {
		fmt.Fprintf(bw, "Worst: %s. Every service survives every failure.\n", a.Worst)
	} else {
		fmt.Fprintf(bw, "Worst: %s. NOT every service survives: see the rows above marked read-only or down.\n", a.Worst)
	}
	fmt.Fprintln(bw, "(* acknowledged writes may be lost: an async replica or Redis replica was promoted)")
	return bw.Flush()
}

// Analysis is topology.Analysis, named here for WriteText's signature.
type Analysis = topology.Analysis
