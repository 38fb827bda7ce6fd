package judge_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/judge"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/checks"
)

// The saved passing run every test starts from (a synthetic quickstart run,
// see reports/README.md).
const passing = "../../../../reports/testdata/quickstart-pass"

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// copyRun copies the saved run into a temp dir, the evidence gunzipped
// (so that tests can edit it) unless keepGzip.
func copyRun(t *testing.T, keepGzip bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"scenario.yaml", "report.json", "history.jsonl.gz", "final-state.json.gz"} {
		b, err := os.ReadFile(filepath.Join(passing, name))
		require.NoError(t, err)
		if strings.HasSuffix(name, ".gz") && !keepGzip {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			require.NoError(t, err)
			b, err = io.ReadAll(zr)
			require.NoError(t, err)
			name = strings.TrimSuffix(name, ".gz")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	return dir
}

func editFinal(t *testing.T, dir string, edit func(*history.Final)) {
	t.Helper()
	path := filepath.Join(dir, reports.FinalFile)
	f, err := history.ReadFinal(path)
	require.NoError(t, err)
	edit(f)
	require.NoError(t, history.WriteFinal(path, f))
}

func readEvents(t *testing.T, dir string) []history.Event {
	t.Helper()
	events, err := history.ReadFile(filepath.Join(dir, reports.HistoryFile))
	require.NoError(t, err)
	return events
}

func writeEvents(t *testing.T, dir string, events []history.Event) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range events {
		require.NoError(t, enc.Encode(e))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, reports.HistoryFile), b.Bytes(), 0o644))
}

// firstOK returns the first acknowledged event of op in the history.
func firstOK(t *testing.T, events []history.Event, op string) history.Event {
	t.Helper()
	for _, e := range events {
		if e.Type == history.OK && e.Op == op && e.ID != "" {
			return e
		}
	}
	t.Fatalf("no acknowledged %s in the history", op)
	return history.Event{}
}

func readReport(t *testing.T, path string) *checks.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var rep checks.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	return &rep
}

// requireNamed asserts the check failed with a fail finding naming every
// one of names, in report.json and on the terminal.
func requireNamed(t *testing.T, rep *checks.Report, stdout, check string, names ...string) {
	t.Helper()
	c := rep.Check(check)
	require.NotNil(t, c)
	require.Equal(t, checks.Fail, c.Status, c.Summary)
	var text []string
	for _, f := range c.Findings {
		if f.Severity == checks.SevFail {
			text = append(text, f.Message+" "+strings.Join(f.IDs, " "))
		}
	}
	all := strings.Join(text, "\n")
	for _, n := range names {
		require.Contains(t, all, n, "the %s findings must name what changed", check)
		require.Contains(t, stdout, n, "the terminal's FINDINGS must name what changed")
	}
}

func TestJudgeUnmodifiedRunGivesTheStoredReport(t *testing.T) {
	dir := copyRun(t, true)
	code, stdout, stderr := run(t, "judge", dir)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "PASS (exit 0)")
	require.Contains(t, stdout, "previous report: PASS (exit 0)")
	// Byte for byte the same scoring as the run's own: seed and start come
	// from the stored report, as there is no plan.json.
	stored, err := os.ReadFile(filepath.Join(passing, reports.JSONFile))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, reports.JSONFile))
	require.NoError(t, err)
	require.JSONEq(t, string(stored), string(got))
	prev, err := os.ReadFile(filepath.Join(dir, judge.PrevJSONFile))
	require.NoError(t, err)
	require.Equal(t, stored, prev, "the replaced report is kept")
	for _, f := range []string{reports.JUnitFile, reports.HTMLFile} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
	}
}

func TestJudgeMutatedEvidenceFailsSafety(t *testing.T) {
	tests := []struct {
		name  string
		check string
		// mutate edits the run in dir and returns what the finding must name.
		mutate func(t *testing.T, dir string) []string
	}{
		{"committed transfer deleted", checks.CheckAcknowledged, func(t *testing.T, dir string) []string {
			id := firstOK(t, readEvents(t, dir), history.OpTransfer).ID
			editFinal(t, dir, func(f *history.Final) {
				require.Equal(t, "COMMITTED", f.Transfers[id].State)
				delete(f.Transfers, id)
			})
			return []string{id}
		}},
		{"money moved between two positions", checks.CheckMoney, func(t *testing.T, dir string) []string {
			var names []string
			editFinal(t, dir, func(f *history.Final) {
				require.GreaterOrEqual(t, len(f.Positions), 2)
				f.Positions[0].Value += 100
				f.Positions[1].Value -= 100
				names = []string{f.Positions[0].Participant, f.Positions[1].Participant, "+100 not accounted for", "-100 not accounted for"}
			})
			return names
		}},
		{"consumed Kafka record dropped", checks.CheckKafka, func(t *testing.T, dir string) []string {
			events := readEvents(t, dir)
			c := firstOK(t, events, history.OpConsume)
			kept := events[:0]
			for _, e := range events {
				if !(e.Op == history.OpConsume && e.Topic == c.Topic && e.Partition == c.Partition && e.Offset == c.Offset) {
					kept = append(kept, e)
				}
			}
			require.Less(t, len(kept), len(events))
			writeEvents(t, dir, kept)
			return []string{c.Topic + "/" + strconv.Itoa(int(c.Partition)) + "@" + strconv.FormatInt(c.Offset, 10)}
		}},
		{"acknowledged Redis key removed", checks.CheckReplicas, func(t *testing.T, dir string) []string {
			// The first write, acknowledged in warmup: long before any fault
			// under which analyze would allow Redis to lose it.
			id := firstOK(t, readEvents(t, dir), history.OpRedisSet).ID
			editFinal(t, dir, func(f *history.Final) {
				require.True(t, f.RedisKeys[id])
				delete(f.RedisKeys, id)
			})
			return []string{id}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyRun(t, false)
			names := tc.mutate(t, dir)
			code, stdout, stderr := run(t, "judge", dir)
			require.Equal(t, cli.ExitSafety, code, stderr+stdout)
			require.Contains(t, stdout, "FAIL (exit 3)")
			require.Contains(t, stdout, "previous report: PASS (exit 0)")
			rep := readReport(t, filepath.Join(dir, reports.JSONFile))
			require.Equal(t, checks.Fail, rep.Verdict)
			require.Equal(t, checks.ExitSafety, rep.ExitCode)
			requireNamed(t, rep, stdout, tc.check, names...)
		})
	}
}

func TestJudgeStricterExpectation(t *testing.T) {
	dir := copyRun(t, true)
	out := filepath.Join(t.TempDir(), "rejudged")
	// The stored run kept 92% and 90% of baseline through its faults.
	code, stdout, stderr := run(t, "judge", dir, "--expect", "throughput=0.99", "--out", out)
	require.Equal(t, cli.ExitLiveness, code, stderr)
	require.Contains(t, stderr, "throughput 0.1 → 0.99", "the stored run's scenario expects 0.1")
	require.Contains(t, stdout, "FAIL (exit 4)")
	rep := readReport(t, filepath.Join(out, reports.JSONFile))
	require.Equal(t, checks.Fail, rep.Check(checks.CheckThroughput).Status)
	require.InDelta(t, 0.99, rep.Expect.Throughput, 1e-9, "report.json records the expectation used")
	for _, c := range rep.Checks {
		if c.Class == checks.Safety {
			require.Equal(t, checks.Pass, c.Status, c.ID)
		}
	}
	// --out leaves the run directory as it was.
	stored, err := os.ReadFile(filepath.Join(passing, reports.JSONFile))
	require.NoError(t, err)
	kept, err := os.ReadFile(filepath.Join(dir, reports.JSONFile))
	require.NoError(t, err)
	require.Equal(t, stored, kept)
	_, err = os.Stat(filepath.Join(dir, judge.PrevJSONFile))
	require.ErrorIs(t, err, os.ErrNotExist)

	// A laxer one from a file, then a flag on top: the flag wins.
	file := filepath.Join(t.TempDir(), "expect.yaml")
	require.NoError(t, os.WriteFile(file, []byte("expect:\n  throughput: 0.99\n  quorum: any\n"), 0o644))
	code, _, stderr = run(t, "judge", dir, "--expect-file", file, "--expect", "throughput=0.9", "--out", out)
	require.Equal(t, cli.ExitOK, code, stderr)
	rep = readReport(t, filepath.Join(out, reports.JSONFile))
	require.InDelta(t, 0.9, rep.Expect.Throughput, 1e-9)
	require.Equal(t, "any", rep.Expect.Quorum)
	require.Equal(t, checks.Skip, rep.Check(checks.CheckQuorum).Status)
	_, err = os.Stat(filepath.Join(out, judge.PrevJSONFile))
	require.NoError(t, err, "the first judgement's report is kept")
}

func TestJudgeUsageErrors(t *testing.T) {
	dir := copyRun(t, true)
	file := filepath.Join(t.TempDir(), "expect.yaml")
	require.NoError(t, os.WriteFile(file, []byte("expect:\n  recovery: soon\n"), 0o644))
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--expect", "throughput=1.5"}, []string{`--expect throughput=1.5: throughput wants a fraction of baseline from 0 to 1, such as 0.8, not "1.5"`}},
		{[]string{"--expect", "throughput"}, []string{"--expect throughput: want key=value"}},
		{[]string{"--expect", "quorum=sometimes", "--expect", "latency=1s"}, []string{
			`quorum wants held or any, not "sometimes"`,
			"--expect latency=1s: unknown expectation (known: quorum, acknowledgedLoss, throughput, recovery, failover)",
		}},
		{[]string{"--expect", "acknowledgedLoss=-1"}, []string{"acknowledgedLoss wants a whole number ≥ 0"}},
		{[]string{"--expect", "failover.central-ledger-db=never"}, []string{"failover wants a duration"}},
		{[]string{"--expect", "failover.no-such-service=20s"}, []string{`scenario quickstart has no service "no-such-service"`}},
		{[]string{"--expect-file", file}, []string{file + `:2:13: recovery: recovery wants a duration such as 30s or 2m, not "soon"`}},
	} {
		code, stdout, stderr := run(t, append([]string{"judge", dir}, tc.args...)...)
		require.Equal(t, cli.ExitInvalid, code, "%v: %s", tc.args, stdout)
		for _, w := range tc.want {
			require.Contains(t, stderr, w, tc.args)
		}
		// Nothing was judged or rewritten.
		_, err := os.Stat(filepath.Join(dir, judge.PrevJSONFile))
		require.ErrorIs(t, err, os.ErrNotExist, tc.args)
	}

	code, _, stderr := run(t, "judge", t.TempDir())
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, stderr, "scenario.yaml")
	empty := t.TempDir()
	b, err := os.ReadFile(filepath.Join(passing, "scenario.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(empty, "scenario.yaml"), b, 0o644))
	code, _, stderr = run(t, "judge", empty)
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, stderr, "is not a run directory: no history.jsonl")
	code, _, _ = run(t, "judge")
	require.Equal(t, cli.ExitInvalid, code)
}

// plan.json, when present, gives the seed and start time.
func TestJudgeTakesSeedFromPlan(t *testing.T) {
	dir := copyRun(t, true)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plan.json"), []byte(`{"seed": 42, "started": "2026-01-02T03:04:05Z", "faults": []}`), 0o644))
	code, stdout, stderr := run(t, "judge", dir)
	require.Equal(t, cli.ExitOK, code, stderr)
	require.Contains(t, stdout, "(seed 42)")
	rep := readReport(t, filepath.Join(dir, reports.JSONFile))
	require.EqualValues(t, 42, rep.Seed)
	require.Equal(t, "2026-01-02T03:04:05Z", rep.Started.Format("2006-01-02T15:04:05Z07:00"))
}

// A saved run whose document store refused writes for 11.5 s after a site
// isolation passes with its engine's default budget; re-judged with a 1 s
// budget it must FAIL on failover, naming the service, the measured outage
// and the budget, and never as a quorum mismatch.
func TestJudgeFailoverBudget(t *testing.T) {
	dir := "../../../../reports/testdata/docstore-slow-failover"
	out := filepath.Join(t.TempDir(), "rejudged")
	code, stdout, stderr := run(t, "judge", dir, "--out", out)
	require.Equal(t, cli.ExitOK, code, "%s\n%s", stdout, stderr)

	code, stdout, stderr = run(t, "judge", dir, "--expect", "failover.bulk-db=1s", "--out", out)
	require.Equal(t, cli.ExitLiveness, code, "%s\n%s", stdout, stderr)
	require.Contains(t, stderr, "failover of bulk-db engine default → 1s")
	rep := readReport(t, filepath.Join(out, reports.JSONFile))
	f := rep.Check(checks.CheckFailover)
	require.Equal(t, checks.Fail, f.Status, f.Summary)
	var msgs []string
	for _, fd := range f.Findings {
		msgs = append(msgs, fd.Message)
	}
	require.Contains(t, strings.Join(msgs, "\n"), "bulk-db refused writes for 11.5s")
	require.Contains(t, strings.Join(msgs, "\n"), "budget of 1s")
	require.Equal(t, checks.Pass, rep.Check(checks.CheckQuorum).Status)
}
