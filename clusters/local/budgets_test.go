package local

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// The reports' fallback table (for run directories without budgets.json)
// must say what the engines derive; no lab needed.
func TestFailoverBudgetsMatchReportsTable(t *testing.T) {
	for _, kind := range scenarios.Kinds {
		b := KindFailoverBudget(kind)
		want := checks.DefaultBudget(kind)
		require.Equal(t, want.Budget.D(), b.Budget, kind)
		require.Equal(t, want.Derivation, b.Derivation, kind)
	}
}
