package topology

import (
	"fmt"
	"io"
	"testing"

	"github.com/chaosloop/chaosloop/scenarios"
)

// bigScenario is a generated 3-site topology: 10 racks of 20 nodes per site
// (600 nodes), dual feeds shared by rack pairs, a ToR pair per rack pair, 10
// pools and 30 services of every kind.
func bigScenario() *scenarios.Scenario {
	sc := &scenarios.Scenario{Name: "big"}
	pools := make([]string, 10)
	for i := range pools {
		pools[i] = fmt.Sprintf("POOL-%d", i)
	}
	for s := range 3 {
		site := scenarios.Site{Name: fmt.Sprintf("dc%d", s+1)}
		for r := range 10 {
			pair := r / 2
			rack := scenarios.Rack{
				Name:     fmt.Sprintf("r%02d", r),
				Power:    []string{fmt.Sprintf("dc%d-pdu-%da", s+1, pair), fmt.Sprintf("dc%d-pdu-%db", s+1, pair)},
				Switches: []string{fmt.Sprintf("dc%d-tor-%da", s+1, pair), fmt.Sprintf("dc%d-tor-%db", s+1, pair)},
			}
			for n := range 20 {
				rack.Nodes = append(rack.Nodes, scenarios.Node{
					Name:  fmt.Sprintf("dc%d-r%02d-n%02d", s+1, r, n),
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
	return sc.WithDefaults()
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

// BenchmarkAnalyzeDepth2Big: depth-2 analysis of 600 nodes and 30 services
// (about 236,000 failures). Recorded in the README.
func BenchmarkAnalyzeDepth2Big(b *testing.B) {
	t := mustBuild(b, bigScenario())
	b.ReportAllocs()
	var a *Analysis
	for b.Loop() {
		a = t.Analyze(2)
	}
	b.ReportMetric(float64(len(a.Failures)), "failures")
}

// BenchmarkWriteJSONDepth2Big: streaming the contract's JSON for the same
// analysis (hundreds of megabytes) to io.Discard.
func BenchmarkWriteJSONDepth2Big(b *testing.B) {
	t := mustBuild(b, bigScenario())
	a := t.Analyze(2)
	cw := &countingWriter{}
	for b.Loop() {
		cw.n = 0
		if err := a.WriteJSON(cw); err != nil {
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
	t := mustBuild(b, sc)
	var a *Analysis
	for b.Loop() {
		a = t.Analyze(2)
	}
	b.ReportMetric(float64(len(a.Failures)), "failures")
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
