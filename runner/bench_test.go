package runner_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
)

// BenchmarkQuickstartThroughput: the quickstart lab with no fault, offered
// each of CHAOSLOOP_BENCH_RATE transfers/s (comma-separated, default
// 150,300,600) for CHAOSLOOP_BENCH_SECONDS (default 60) after a 15 s
// warmup: the sustained committed transfers/s and latency p50/p99 of the
// whole pipeline (Redis check, Kafka, handlers, Galera, notification), and
// where it saturates. `make bench` runs it; the numbers are in the README.
func BenchmarkQuickstartThroughput(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (the local lab)")
	}
	rates, secs := []float64{150, 300, 600}, 60
	if v := os.Getenv("CHAOSLOOP_BENCH_RATE"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				b.Fatalf("CHAOSLOOP_BENCH_RATE: %v", err)
			}
			rates = append(rates, r)
		}
	}
	if v, err := strconv.Atoi(os.Getenv("CHAOSLOOP_BENCH_SECONDS")); err == nil {
		secs = v
	}
	for _, rate := range rates {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) { benchQuickstart(b, rate, secs) })
	}
}

func benchQuickstart(b *testing.B, rate float64, secs int) {
	src, err := os.ReadFile("../scenarios/quickstart.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := scenarios.Decode("quickstart.yaml", src)
		if err != nil {
			b.Fatal(err)
		}
		sc := s.WithDefaults()
		sc.Name = "quickstart-bench"
		sc.Faults = nil
		sc.Load.Rate = &rate
		sc.Load.Duration = &scenarios.Duration{Duration: time.Duration(secs) * time.Second}
		sc.Load.Warmup = &scenarios.Duration{Duration: 15 * time.Second}
		_, res := run(b, sc, 1)
		for _, p := range res.Report.Phases {
			if p.Name == "baseline" {
				b.ReportMetric(rate, "offered/s")
				b.ReportMetric(p.Throughput, "committed/s")
				b.ReportMetric(time.Duration(p.P50).Seconds()*1000, "p50-ms")
				b.ReportMetric(time.Duration(p.P99).Seconds()*1000, "p99-ms")
				b.ReportMetric(float64(p.Dropped), "dropped")
				b.ReportMetric(float64(p.Errors), "errors")
			}
		}
	}
}
