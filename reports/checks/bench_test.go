package checks_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
	"github.com/chaosloop/chaosloop/scenarios"
)

// BenchmarkRunQuickstart judges a full-rate quickstart run (100
// transfers/s for 200 s: about 140,000 events).
func BenchmarkRunQuickstart(b *testing.B) {
	sc, err := scenarios.Parse("../../scenarios/quickstart.yaml")
	require.NoError(b, err)
	run, err := synth.Generate(sc, synth.Config{})
	require.NoError(b, err)
	b.ReportMetric(float64(len(run.Events)), "events")
	b.ResetTimer()
	for b.Loop() {
		_, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final}, checks.Options{})
		require.NoError(b, err)
	}
}
