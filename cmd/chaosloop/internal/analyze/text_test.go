package analyze

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

func analysis(t *testing.T, file string, depth int) *topology.Analysis {
	t.Helper()
	sc, err := scenarios.Parse("../../../../scenarios/" + file)
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo.NewAnalysis(depth)
}

func text(t *testing.T, a *topology.Analysis, limit, budget int) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, writeText(context.Background(), &b, a, true, limit, budget))
	return b.String()
}

// The matrix printed in several passes, a few severities per pass or one
// severity streamed, is the one sorted in memory.
func TestTextPassesAgree(t *testing.T) {
	for _, file := range []string{"three-site.yaml", "two-site.yaml", "reference.yaml"} {
		a := analysis(t, file, 2)
		whole := text(t, a, 0, textBudget)
		require.Greater(t, strings.Count(whole, "\n"), a.Count, file)
		for _, budget := range []int{0, 100, 5000, 200000} {
			require.Equal(t, whole, text(t, a, 0, budget), "%s, budget %d", file, budget)
		}
	}
}

// --limit N shows the first N rows of the whole matrix (only the failure
// column's width differs: it fits the rows shown).
func TestTextLimitIsPrefix(t *testing.T) {
	a := analysis(t, "three-site.yaml", 2)
	fields := func(s string) []string {
		var out []string
		for line := range strings.Lines(s) {
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
		return out
	}
	whole := fields(text(t, a, 0, textBudget))
	for _, limit := range []int{1, 7, 100, a.Total() - 1} {
		got := fields(text(t, a, limit, textBudget))
		require.Equal(t, whole[:1+limit], got[:1+limit], "limit %d", limit)
		require.Contains(t, got[2+limit], "(showing the")
	}
	require.Equal(t, whole, fields(text(t, a, a.Total(), textBudget)))
}

// A cancelled context stops the analysis and is reported.
func TestTextCancelled(t *testing.T) {
	a := analysis(t, "reference.yaml", 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, limit := range []int{0, 3} {
		var b bytes.Buffer
		require.ErrorIs(t, WriteText(ctx, &b, a, false, limit), context.Canceled)
	}
	require.ErrorIs(t, a.WriteJSON(ctx, &bytes.Buffer{}), context.Canceled)
}

// Ctrl-C (a cancelled command context) ends the command at once, with the
// context's cause (a signal gives its exit code, see cli.Interruptible).
func TestCommandInterrupted(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out, errb bytes.Buffer
		cmd := NewCommand(&cli.Env{Streams: cli.Streams{Out: &out, Err: &errb}})
		cmd.SetArgs([]string{"../../../../scenarios/reference.yaml", "--depth", "2", "-o", format})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := cmd.ExecuteContext(ctx)
		require.ErrorIs(t, err, context.Canceled)
	}
}
