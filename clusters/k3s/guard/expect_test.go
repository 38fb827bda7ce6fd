package guard

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// faultsTopology is testdata/faults.yaml: dc1-cp and dc1-w in dc1's rack,
// dc2-w in dc2.
func faultsTopology(t *testing.T) *topology.Topology {
	sc, err := scenarios.Parse("../testdata/faults.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return topo
}

func injected(fs ...lab.Fault) []lab.Injected {
	var out []lab.Injected
	for _, f := range fs {
		out = append(out, lab.Injected{Fault: f})
	}
	return out
}

func mayBe(e Expectation) []string {
	var out []string
	for n := range e.MayBeNotReady {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// What each fault may take NotReady follows from where the control plane
// is: the side cut off it, the nodes powered off, and everything when no
// side keeps most of it.
func TestExpect(t *testing.T) {
	topo := faultsTopology(t)
	cases := []struct {
		name    string
		cp      []string
		faults  []lab.Fault
		may     []string
		apiLost bool
	}{
		{name: "nothing in place", cp: []string{"dc1-cp"}},
		{name: "a site cut off the control plane's", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "isolate", Target: "site/dc2"}}, may: []string{"dc2-w"}},
		{name: "the control plane's site cut off", cp: []string{"dc2-w"},
			faults: []lab.Fault{{Action: "isolate", Target: "site/dc2"}}, may: []string{"dc1-cp", "dc1-w"}},
		{name: "a worker isolated", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "isolate", Target: "node/dc1-w"}}, may: []string{"dc1-w"}},
		{name: "a worker destroyed", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "destroy", Target: "node/dc2-w"}}, may: []string{"dc2-w"}},
		{name: "the control plane's rack powered off", cp: []string{"dc1-cp"},
			faults:  []lab.Fault{{Action: "power-off", Target: "rack/dc1/r1"}},
			may:     []string{"dc1-cp", "dc1-w", "dc2-w"},
			apiLost: true},
		{name: "a short delay", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "latency", Target: "link/dc1/dc2", Delay: 50 * time.Millisecond}}},
		{name: "a lossy link", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "latency", Target: "link/dc1/dc2", Delay: 50 * time.Millisecond, Loss: 0.3}},
			may:    []string{"dc1-cp", "dc1-w", "dc2-w"}},
		{name: "two faults together", cp: []string{"dc1-cp"},
			faults: []lab.Fault{{Action: "isolate", Target: "node/dc1-w"}, {Action: "power-off", Target: "rack/dc2/r1"}},
			may:    []string{"dc1-w", "dc2-w"}},
		{name: "a control plane outside the scenario reaches every side", cp: []string{"cp-x"},
			faults: []lab.Fault{{Action: "isolate", Target: "site/dc2"}}},
		{name: "no control plane known: every node that lost a peer", cp: nil,
			faults: []lab.Fault{{Action: "isolate", Target: "node/dc1-w"}}, may: []string{"dc1-cp", "dc1-w", "dc2-w"}},
		{name: "no control plane known: a node powered off cuts no other", cp: nil,
			faults: []lab.Fault{{Action: "power-off", Target: "node/dc2-w"}}, may: []string{"dc2-w"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := Expect(topo, nil, c.cp, injected(c.faults...))
			require.NoError(t, err)
			require.Equal(t, c.may, mayBe(e))
			require.Equal(t, c.apiLost, e.APIMayBeLost != "", e.APIMayBeLost)
		})
	}
}

// The node map names the cluster's nodes.
func TestExpectMapsNodes(t *testing.T) {
	topo := faultsTopology(t)
	m := k3s.NodeMap{"dc2-w": "worker-7", "dc1-cp": "server-1"}
	e, err := Expect(topo, m, []string{"server-1"}, injected(lab.Fault{Action: "isolate", Target: "site/dc2"}))
	require.NoError(t, err)
	require.Equal(t, []string{"worker-7"}, mayBe(e))
}

// A fault that is not the scenario's is an error, not a guess.
func TestExpectUnknownTarget(t *testing.T) {
	_, err := Expect(faultsTopology(t), nil, nil, injected(lab.Fault{Action: "isolate", Target: "site/dc9"}))
	require.ErrorContains(t, err, "dc9")
}
