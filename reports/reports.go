// Package reports judges a finished run and writes its reports: it reads
// the run directory's evidence (history.jsonl, final-state.json), runs the
// checks (reports/checks) and writes report.json, junit.xml and
// report.html (reports/render). The run command calls Generate after
// convergence; the judge command calls Judge and Write to score a saved run
// directory again.
package reports

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/render"
	"github.com/chaosloop/chaosloop/scenarios"
)

// File names in a run directory.
const (
	HistoryFile = "history.jsonl"
	FinalFile   = "final-state.json"
	JSONFile    = "report.json"
	JUnitFile   = "junit.xml"
	HTMLFile    = "report.html"
	// BudgetsFile: the failover budget per service the run used (service →
	// checks.Budget), written by the runner. Older run directories have
	// none: the checks then take their table by service kind.
	BudgetsFile = "budgets.json"
)

// Run identifies the run being judged.
type Run struct {
	// Dir is the run directory holding the evidence; Generate writes the
	// reports there.
	Dir      string
	Scenario *scenarios.Scenario
	Seed     uint64
	// Backend is where the lab ran (local, kind); "" when unknown.
	Backend string
	Started time.Time
}

// Generate judges the run in r.Dir and writes its reports there. A missing or unreadable final state is not an error (the checks
// needing it report UNKNOWN); a missing history is.
func Generate(ctx context.Context, log *slog.Logger, r Run, opts checks.Options) (*checks.Report, error) {
	rep, err := Judge(ctx, log, r, opts)
	if err != nil {
		return nil, err
	}
	if err := Write(r.Dir, rep); err != nil {
		return rep, err
	}
	log.Info("reports written", "html", filepath.Join(r.Dir, HTMLFile))
	return rep, nil
}

// Judge reads the evidence in r.Dir and runs the checks, writing nothing:
// the one scoring path shared by run (through Generate) and judge. Each
// evidence file may also be gzipped (history.jsonl.gz, final-state.json.gz),
// as archived runs and testdata are.
func Judge(ctx context.Context, log *slog.Logger, r Run, opts checks.Options) (*checks.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := time.Now()
	var events []history.Event
	err := readEvidence(r.Dir, HistoryFile, func(rd io.Reader) (err error) {
		events, err = history.Read(rd)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	in := checks.Input{Scenario: r.Scenario, Events: events, Seed: r.Seed, Backend: r.Backend, Started: r.Started}
	final := &history.Final{}
	switch err := readEvidence(r.Dir, FinalFile, func(rd io.Reader) error { return json.NewDecoder(rd).Decode(final) }); {
	case errors.Is(err, fs.ErrNotExist):
		in.FinalError = "no " + FinalFile + " (the run did not get as far as reading the final state)"
	case err != nil:
		in.FinalError = err.Error()
	default:
		in.Final = final
	}
	if opts.Budgets == nil {
		if opts.Budgets, err = ReadBudgets(r.Dir); err != nil {
			return nil, err
		}
	}
	rep, err := checks.Run(in, opts)
	if err != nil {
		return nil, err
	}
	log.Info("run judged", "scenario", rep.Scenario, "verdict", rep.Verdict, "exit", rep.ExitCode,
		"events", len(events), "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// readEvidence opens dir/name, else dir/name.gz, and hands its content to
// read. A missing file is fs.ErrNotExist naming the plain file.
func readEvidence(dir, name string, read func(io.Reader) error) error {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		gf, gerr := os.Open(path + ".gz")
		if gerr != nil {
			return err
		}
		defer gf.Close()
		zr, gerr := gzip.NewReader(gf)
		if gerr != nil {
			return fmt.Errorf("%s.gz: %w", path, gerr)
		}
		if err := read(zr); err != nil {
			return fmt.Errorf("%s.gz: %w", path, err)
		}
		return zr.Close()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Write writes report.json, junit.xml and report.html into dir.
func Write(dir string, rep *checks.Report) error {
	for _, out := range []struct {
		name  string
		write func(*bytes.Buffer, *checks.Report) error
	}{
		{JSONFile, func(b *bytes.Buffer, r *checks.Report) error { return render.JSON(b, r) }},
		{JUnitFile, func(b *bytes.Buffer, r *checks.Report) error { return render.JUnit(b, r) }},
		{HTMLFile, func(b *bytes.Buffer, r *checks.Report) error { return render.HTML(b, r) }},
	} {
		var b bytes.Buffer
		if err := out.write(&b, rep); err != nil {
			return fmt.Errorf("reports: %s: %w", out.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, out.name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("reports: %w", err)
		}
	}
	return nil
}

// WriteBudgets records the failover budgets a run uses in its directory.
func WriteBudgets(dir string, b map[string]checks.Budget) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, BudgetsFile), append(data, '\n'), 0o644)
}

// ReadBudgets reads a run directory's budgets.json; nil without error when
// there is none (a run from before budgets were recorded).
func ReadBudgets(dir string) (map[string]checks.Budget, error) {
	data, err := os.ReadFile(filepath.Join(dir, BudgetsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	var b map[string]checks.Budget
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("reports: %s: %w", BudgetsFile, err)
	}
	return b, nil
}
