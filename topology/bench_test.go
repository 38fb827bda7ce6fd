package topology

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/scenarios"
)

// bigScenario is the generated 3-site topology of 600 nodes the README's
// benchmarks record.
func bigScenario() *scenarios.Scenario { return genBig(3, 10).WithDefaults() }

// genBig generates sites × racks racks of 20 nodes, dual feeds shared by
// rack pairs, a ToR pair per rack pair, 10 pools and 30 services of every
// kind (defaults not applied, so that it can be written as a file).
func genBig(sites, racks int) *scenarios.Scenario {
	sc := &scenarios.Scenario{Name: fmt.Sprintf("big-%d", sites*racks*20)}
	pools := make([]string, 10)
	for i := range pools {
		pools[i] = fmt.Sprintf("POOL-%d", i)
	}
	for s := range sites {
		site := scenarios.Site{Name: fmt.Sprintf("dc%d", s+1)}
		for r := range racks {
			pair := r / 2
			rack := scenarios.Rack{
				Name:     fmt.Sprintf("r%03d", r),
				Power:    []string{fmt.Sprintf("dc%d-pdu-%da", s+1, pair), fmt.Sprintf("dc%d-pdu-%db", s+1, pair)},
				Switches: []string{fmt.Sprintf("dc%d-tor-%da", s+1, pair), fmt.Sprintf("dc%d-tor-%db", s+1, pair)},
			}
			for n := range 20 {
				rack.Nodes = append(rack.Nodes, scenarios.Node{
					Name:  fmt.Sprintf("dc%d-r%03d-n%02d", s+1, r, n),
					Pools: []string{pools[n%10]},
				})
			}
			site.Racks = append(site.Racks, rack)
		}
		sc.Sites = append(sc.Sites, site)
	}
	kinds := scenarios.Kinds
	for i := range 30 {
		reps := 3 + 2*(i%3)
		sv := scenarios.Service{Name: fmt.Sprintf("svc-%02d", i), Kind: kinds[i%len(kinds)], Pool: pools[i%10], Replicas: &reps,
			Spread: []string{"site", "rack"}[i%2]}
		if sv.Kind == scenarios.KindKafka {
			// Several zookeeper services: kafka names the one before it.
			sv.Controller = fmt.Sprintf("svc-%02d", i-2)
		}
		if sv.Kind == scenarios.KindMySQL && i%2 == 1 {
			sv.Replication = scenarios.ReplicationAsync
		}
		sc.Services = append(sc.Services, sv)
	}
	return sc
}

func mustBuild(b *testing.B, sc *scenarios.Scenario) *Topology {
	if err := sc.Validate(); err != nil {
		b.Fatal(err)
	}
	t, err := Build(sc)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkAnalyzeDepth2Big: depth-2 analysis of 600 nodes (242,556
// failures) and 2,000 nodes (2.7 million), 30 services, streamed: memory
// stays that of the workers' chunks. Recorded in the README.
func BenchmarkAnalyzeDepth2Big(b *testing.B) {
	for _, size := range []struct{ sites, racks int }{{3, 10}, {4, 25}} {
		t := mustBuild(b, genBig(size.sites, size.racks).WithDefaults())
		b.Run(fmt.Sprintf("nodes=%d", len(t.Nodes)), func(b *testing.B) {
			b.ReportAllocs()
			a := t.NewAnalysis(2)
			for b.Loop() {
				if err := a.Each(b.Context(), func(*Failure) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(a.Count), "failures")
		})
	}
}

// BenchmarkWriteJSONDepth2Big: the 600-node analysis streamed as the
// contract's JSON (hundreds of megabytes) to a discarding writer.
func BenchmarkWriteJSONDepth2Big(b *testing.B) {
	a := mustBuild(b, bigScenario()).NewAnalysis(2)
	cw := &countingWriter{}
	for b.Loop() {
		cw.n = 0
		if err := a.WriteJSON(b.Context(), cw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cw.n)/1e6, "MB")
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return io.Discard.Write(p)
}

// BenchmarkAnalyzeDepth2Reference: the seed's reference scenario at depth 2.
func BenchmarkAnalyzeDepth2Reference(b *testing.B) {
	sc, err := scenarios.Parse("../scenarios/reference.yaml")
	if err != nil {
		b.Fatal(err)
	}
	a := mustBuild(b, sc).NewAnalysis(2)
	for b.Loop() {
		if err := a.Each(b.Context(), func(*Failure) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(a.Count), "failures")
}

func TestBigScenarioIsValid(t *testing.T) {
	sc := bigScenario()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	topo, err := Build(sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Nodes) != 600 || len(topo.Services) != 30 {
		t.Fatalf("got %d nodes, %d services", len(topo.Nodes), len(topo.Services))
	}
}

// TestWriteBigScenarios writes the generated 600-, 2,000- and 20,000-node
// scenarios into $CHAOSLOOP_BIG_SCENARIOS (skipped without it), for timing
// the CLI on them (README, Benchmarks).
func TestWriteBigScenarios(t *testing.T) {
	dir := os.Getenv("CHAOSLOOP_BIG_SCENARIOS")
	if dir == "" {
		t.Skip("CHAOSLOOP_BIG_SCENARIOS not set")
	}
	for _, size := range []struct{ sites, racks int }{{3, 10}, {4, 25}, {4, 250}} {
		sc := genBig(size.sites, size.racks)
		b, err := yaml.Marshal(sc)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, sc.Name+".yaml")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := scenarios.Parse(file); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
}
