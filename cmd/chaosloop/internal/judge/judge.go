// Package judge implements `chaosloop judge RUN_DIR`: score a saved run
// again from its evidence, without re-running it, as Jepsen re-analyses a
// stored history — to apply new budgets (--expect) or try a checker change
// on old runs.
package judge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/render"
	"github.com/chaosloop/chaosloop/runner"
)

// Where the reports a judgement replaces are kept (one generation).
const (
	PrevJSONFile  = "report.prev.json"
	PrevJUnitFile = "junit.prev.xml"
	PrevHTMLFile  = "report.prev.html"
)

type flags struct {
	expect     []string
	expectFile string
	out        string
	output     *cli.Output
}

// NewCommand returns the judge command.
func NewCommand(env *cli.Env) *cobra.Command {
	f := flags{output: &cli.Output{}}
	cmd := &cobra.Command{
		Use:   "judge RUN_DIR",
		Short: "Score a saved run again from its evidence, without re-running it",
		Long: `Judge reads a run directory written by 'chaosloop run' — history.jsonl and
final-state.json (either may be gzipped: .gz), scenario.yaml and plan.json
(seed and start time; without it, those of the report.json already there) —
runs the same checks as run, and writes report.json, junit.xml and
report.html.

By default the reports are written back into RUN_DIR; --out DIR writes them
there instead (created if missing) and leaves RUN_DIR untouched. Reports
already in the output directory are kept, one generation, as
report.prev.json, junit.prev.xml and report.prev.html.

--expect overrides the scenario's expect: section for this judgement only
(the scenario.yaml in RUN_DIR is not changed; report.json records the
expectations used). Repeat it, one key=value each:

  quorum=held|any          acknowledgedLoss=N (whole number ≥ 0)
  throughput=0.8           (fraction of baseline, 0 to 1)
  recovery=30s             (a duration)
  failover=20s, failover.SERVICE=20s   (longest write outage; default: from the engine's timeouts)

--expect-file FILE takes the expect: block of a YAML file (other top-level
keys are ignored, so a scenario file will do); --expect flags apply after it.

Exit status, as for run: 0 pass; 3 safety violated; 4 liveness violated or
inconclusive; 2 not a run directory, invalid scenario or invalid --expect;
1 chaosloop error. -o json or -o yaml prints the new report (report.json's
content) instead of the scorecard.`,
		Example: `  chaosloop judge runs/20261125-120000-quickstart
  chaosloop judge runs/20261125-120000-quickstart --expect throughput=0.9 --expect recovery=20s --out /tmp/rejudged
  chaosloop judge runs/20261125-120000-quickstart --expect-file scenarios/quickstart.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteDirs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.Check(); err != nil {
				return err
			}
			return judge(cmd.Context(), env, args[0], f)
		},
	}
	cmd.Flags().StringArrayVar(&f.expect, "expect", nil, "override one expectation, key=value (repeatable): quorum, acknowledgedLoss, throughput, recovery")
	cmd.Flags().StringVar(&f.expectFile, "expect-file", "", "YAML file whose expect: block overrides the scenario's (applied before --expect)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the reports into this directory instead of RUN_DIR")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.MarkFlagFilename("expect-file", "yaml", "yml")
	f.output.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	return cmd
}

func judge(ctx context.Context, env *cli.Env, dir string, f flags) error {
	if st, err := os.Stat(dir); err != nil {
		return cli.Usagef("%s is not a run directory: %v", dir, err)
	} else if !st.IsDir() {
		return cli.Usagef("%s is not a run directory", dir)
	}
	sc, err := cli.LoadScenario(ctx, env, filepath.Join(dir, runner.ScenarioFile))
	if err != nil {
		return err
	}
	// Every problem with the expectations is reported at once.
	var settings []setting
	var fileErr error
	if f.expectFile != "" {
		settings, fileErr = fileSettings(f.expectFile)
	}
	fl, flagErr := flagSettings(f.expect)
	changed, err := applyExpect(sc, append(settings, fl...))
	if err := errors.Join(fileErr, flagErr, err); err != nil {
		return cli.Invalid(err)
	}
	if len(changed) > 0 {
		fmt.Fprintf(env.Err, "judge %s: expectations overridden: %s\n", dir, strings.Join(changed, ", "))
	}
	run, err := identity(dir)
	if err != nil {
		return cli.Invalid(err)
	}
	run.Scenario = sc

	rep, err := reports.Judge(ctx, env.Log, run, checks.Options{})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cli.Usagef("%s is not a run directory: no %s (or %s.gz)", dir, reports.HistoryFile, reports.HistoryFile)
	case err != nil:
		return cli.Invalid(err)
	}

	out := cmp.Or(f.out, dir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	prev, err := keepPrevious(out)
	if err != nil {
		return err
	}
	if err := reports.Write(out, rep); err != nil {
		return err
	}
	if f.output.Structured() {
		err = f.output.Encode(env.Out, rep)
	} else {
		err = scorecard(env, rep, prev, out)
	}
	if err != nil {
		return err
	}
	if rep.ExitCode != 0 {
		return cli.Exit(rep.ExitCode)
	}
	return nil
}

// scorecard prints the report for a person, and where the files are.
func scorecard(env *cli.Env, rep *checks.Report, prev *checks.Report, out string) error {
	if err := render.Text(env.Out, rep); err != nil {
		return err
	}
	if prev != nil {
		fmt.Fprintf(env.Out, "\nprevious report: %s (exit %d), kept as %s\n", verdictWord(prev.Verdict), prev.ExitCode, filepath.Join(out, PrevJSONFile))
	}
	fmt.Fprintf(env.Out, "report: %s\n", filepath.Join(out, reports.HTMLFile))
	return nil
}

// identity returns the run's seed and start time: from plan.json, else
// from the report.json already in dir (saved runs without a plan, such as
// testdata), else zero (the report then shows no start time).
func identity(dir string) (reports.Run, error) {
	r := reports.Run{Dir: dir}
	_, plan, err := runner.LoadSaved(dir)
	if err == nil {
		r.Seed, r.Backend, r.Started = plan.Seed, plan.Backend, plan.Started
		return r, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	old, rerr := readReport(filepath.Join(dir, reports.JSONFile))
	if rerr != nil {
		// Neither plan nor report: judge without seed and start time
		// rather than refuse; they only label the report.
		return r, nil
	}
	r.Seed, r.Backend = old.Seed, old.Backend
	if old.Started != nil {
		r.Started = *old.Started
	}
	return r, nil
}

// keepPrevious renames the reports in dir to their .prev names and returns
// the previous report.json, nil when there was none (or it did not parse).
func keepPrevious(dir string) (*checks.Report, error) {
	prev, _ := readReport(filepath.Join(dir, reports.JSONFile))
	for _, mv := range [][2]string{{reports.JSONFile, PrevJSONFile}, {reports.JUnitFile, PrevJUnitFile}, {reports.HTMLFile, PrevHTMLFile}} {
		err := os.Rename(filepath.Join(dir, mv[0]), filepath.Join(dir, mv[1]))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keeping the previous report: %w (--out DIR writes the reports elsewhere)", err)
		}
	}
	return prev, nil
}

func readReport(path string) (*checks.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep checks.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &rep, nil
}

func verdictWord(s checks.Status) string {
	if s == checks.Unknown {
		return "INCONCLUSIVE"
	}
	return string(s)
}
