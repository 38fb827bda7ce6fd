package reports_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
	"github.com/chaosloop/chaosloop/scenarios"
)

// go test ./reports -run TestReplay -update regenerates testdata from the
// synthetic generator (and the golden report.json of each case).
var update = flag.Bool("update", false, "regenerate testdata")

// A saved case: testdata/<name>/ holds scenario.yaml, history.jsonl.gz,
// final-state.json.gz, want.json and the golden report.json.
type want struct {
	Verdict  checks.Status            `json:"verdict"`
	ExitCode int                      `json:"exitCode"`
	Checks   map[string]checks.Status `json:"checks"`
}

type testCase struct {
	name string
	cfg  synth.Config
	// edit adapts the quickstart scenario.
	edit func(*scenarios.Scenario)
}

var cases = []testCase{
	// The quickstart as the issue asks it to pass: a rack power-off and a
	// site isolation, both survived.
	{name: "quickstart-pass"},
	// The Redis primary's site cut off under load: Sentinel fails over and
	// the writes the old primary acknowledged meanwhile are gone — as
	// analyze predicted, so reported, not failed.
	{name: "redis-primary-partitioned", cfg: synth.Config{RedisLoss: map[int]int{0: 7}}, edit: func(sc *scenarios.Scenario) {
		sc.Faults = []scenarios.Fault{{At: &scenarios.Duration{Duration: 40 * time.Second}, For: &scenarios.Duration{Duration: 40 * time.Second},
			Action: scenarios.ActionIsolate, Target: "site/dc1"}}
	}},
	// The slow but correct failover: the document store refuses
	// writes from +7.0 s to +18.1 s after the site isolation while Patroni
	// elects a new leader — within its 22.5 s budget, so it passes (the old
	// fixed 15 s settle grace called it quorum lost), with the outage in
	// the report.
	{name: "docstore-slow-failover", cfg: synth.Config{WriteOutage: map[int]synth.WriteOutage{
		1: {Service: "bulk-db", From: 7 * time.Second, To: 18100 * time.Millisecond}}}},
	// Two of three Galera members in one rack, which loses power: quorum
	// lost (exit 4).
	{name: "galera-two-in-one-rack", edit: func(sc *scenarios.Scenario) {
		sc.Sites[0].Racks[0].Nodes = append(sc.Sites[0].Racks[0].Nodes, scenarios.Node{Name: "dc1-db2", Pools: []string{"RDBMS-CENTRAL-LEDGER-LIVE"}})
		for i := range sc.Services {
			if sc.Services[i].Name == "central-ledger-db" {
				sc.Services[i].Placement = []string{"dc1-db", "dc1-db2", "dc2-db"}
			}
		}
	}},
}

func TestReplay(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			if *update {
				writeCase(t, dir, tc)
			}
			sc, err := scenarios.Parse(filepath.Join(dir, "scenario.yaml"))
			require.NoError(t, err)
			run := t.TempDir()
			gunzip(t, filepath.Join(dir, "history.jsonl.gz"), filepath.Join(run, reports.HistoryFile))
			gunzip(t, filepath.Join(dir, "final-state.json.gz"), filepath.Join(run, reports.FinalFile))
			started := time.Date(2025, 11, 25, 3, 0, 0, 0, time.UTC)
			rep, err := reports.Generate(context.Background(), slog.New(slog.DiscardHandler), reports.Run{Dir: run, Scenario: sc, Seed: 1, Started: started}, checks.Options{})
			require.NoError(t, err)

			var w want
			readJSON(t, filepath.Join(dir, "want.json"), &w)
			got := want{Verdict: rep.Verdict, ExitCode: rep.ExitCode, Checks: map[string]checks.Status{}}
			for _, c := range rep.Checks {
				got.Checks[c.ID] = c.Status
			}
			require.Equal(t, w, got, "%v", rep.Why)

			// Every output parses; report.json matches the golden copy.
			out, err := os.ReadFile(filepath.Join(run, reports.JSONFile))
			require.NoError(t, err)
			if *update {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "report.json"), out, 0o644))
			}
			golden, err := os.ReadFile(filepath.Join(dir, "report.json"))
			require.NoError(t, err)
			require.JSONEq(t, string(golden), string(out))
			var back checks.Report
			require.NoError(t, json.Unmarshal(out, &back))
			require.Equal(t, checks.ReportVersion, back.Version)
			for _, f := range []string{reports.JUnitFile, reports.HTMLFile} {
				st, err := os.Stat(filepath.Join(run, f))
				require.NoError(t, err)
				require.Positive(t, st.Size())
			}
		})
	}
}

// A run that crashed before reading the final state is judged UNKNOWN,
// not passed.
func TestGenerateWithoutFinalState(t *testing.T) {
	dir := t.TempDir()
	gunzip(t, filepath.Join("testdata", "quickstart-pass", "history.jsonl.gz"), filepath.Join(dir, reports.HistoryFile))
	sc, err := scenarios.Parse(filepath.Join("testdata", "quickstart-pass", "scenario.yaml"))
	require.NoError(t, err)
	rep, err := reports.Generate(context.Background(), slog.New(slog.DiscardHandler), reports.Run{Dir: dir, Scenario: sc}, checks.Options{})
	require.NoError(t, err)
	require.Equal(t, checks.Unknown, rep.Verdict)
	require.Equal(t, checks.ExitLiveness, rep.ExitCode)
	require.Contains(t, rep.Check(checks.CheckAcknowledged).Summary, "no final-state.json")
}

// Judge reads gzipped evidence in place (archived runs, testdata) and
// writes nothing.
func TestJudgeReadsGzippedEvidence(t *testing.T) {
	dir := filepath.Join("testdata", "quickstart-pass")
	sc, err := scenarios.Parse(filepath.Join(dir, "scenario.yaml"))
	require.NoError(t, err)
	rep, err := reports.Judge(context.Background(), slog.New(slog.DiscardHandler), reports.Run{Dir: dir, Scenario: sc, Seed: 1}, checks.Options{})
	require.NoError(t, err)
	require.Equal(t, checks.Pass, rep.Verdict, "%v", rep.Why)
	_, err = os.Stat(filepath.Join(dir, reports.JUnitFile))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestGenerateWithoutHistoryFails(t *testing.T) {
	sc, err := scenarios.Parse(filepath.Join("testdata", "quickstart-pass", "scenario.yaml"))
	require.NoError(t, err)
	_, err = reports.Generate(context.Background(), slog.New(slog.DiscardHandler), reports.Run{Dir: t.TempDir(), Scenario: sc}, checks.Options{})
	require.Error(t, err)
}

func writeCase(t *testing.T, dir string, tc testCase) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	src, err := os.ReadFile("../scenarios/quickstart.yaml")
	require.NoError(t, err)
	sc, err := scenarios.Decode("quickstart.yaml", src)
	require.NoError(t, err)
	rate := 10.0 // keeps testdata small; the checks do not depend on volume
	sc.Load.Rate = &rate
	if tc.edit != nil {
		tc.edit(sc)
	}
	// Save the scenario as JSON-compatible YAML (YAML is a superset).
	b, err := json.MarshalIndent(sc, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "scenario.yaml"), append([]byte("# Generated by go test ./reports -run TestReplay -update\n"), b...), 0o644))
	run, err := synth.Generate(sc.WithDefaults(), tc.cfg)
	require.NoError(t, err)
	var h bytes.Buffer
	for _, e := range run.Events {
		line, err := json.Marshal(e)
		require.NoError(t, err)
		h.Write(append(line, '\n'))
	}
	gzipTo(t, filepath.Join(dir, "history.jsonl.gz"), h.Bytes())
	f, err := json.MarshalIndent(run.Final, "", " ")
	require.NoError(t, err)
	gzipTo(t, filepath.Join(dir, "final-state.json.gz"), f)
	// want.json is written by hand: regenerate it only when missing.
	if _, err := os.Stat(filepath.Join(dir, "want.json")); err != nil {
		rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final}, checks.Options{})
		require.NoError(t, err)
		w := want{Verdict: rep.Verdict, ExitCode: rep.ExitCode, Checks: map[string]checks.Status{}}
		for _, c := range rep.Checks {
			w.Checks[c.ID] = c.Status
		}
		b, _ := json.MarshalIndent(w, "", "  ")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "want.json"), append(b, '\n'), 0o644))
	}
}

func gzipTo(t *testing.T, path string, data []byte) {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func gunzip(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// The budgets the runner recorded are the ones judged by; a run directory
// without budgets.json falls back to the checks' table by kind.
func TestGenerateReadsRecordedBudgets(t *testing.T) {
	dir := t.TempDir()
	gunzip(t, filepath.Join("testdata", "quickstart-pass", "history.jsonl.gz"), filepath.Join(dir, reports.HistoryFile))
	gunzip(t, filepath.Join("testdata", "quickstart-pass", "final-state.json.gz"), filepath.Join(dir, reports.FinalFile))
	sc, err := scenarios.Parse(filepath.Join("testdata", "quickstart-pass", "scenario.yaml"))
	require.NoError(t, err)
	gen := func() *checks.Report {
		rep, err := reports.Generate(context.Background(), slog.New(slog.DiscardHandler), reports.Run{Dir: dir, Scenario: sc}, checks.Options{})
		require.NoError(t, err)
		return rep
	}
	require.Equal(t, checks.SourceTable, gen().Budgets["bulk-db"].Source)

	rec := checks.Budget{Budget: checks.Sec(20 * time.Second), Derivation: "Patroni as configured", Source: checks.SourceEngine}
	require.NoError(t, reports.WriteBudgets(dir, map[string]checks.Budget{"bulk-db": rec}))
	rep := gen()
	require.Equal(t, rec, rep.Budgets["bulk-db"])
	require.Equal(t, checks.SourceTable, rep.Budgets["kafka"].Source, "a service not recorded takes the table")
}
