package chaosmesh

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenCases are the example scenarios with faults, and one with every
// action on every kind of target.
var goldenCases = map[string]string{
	"quickstart":      "../scenarios/quickstart.yaml",
	"kind-quickstart": "../scenarios/kind-quickstart.yaml",
	"every-action":    "testdata/every-action.yaml",
}

// Golden is a golden file's content: the workflow as written, and what
// the command warns about.
type Golden struct {
	Workflow       Manifest `json:"workflow"`
	Approximations []string `json:"approximations"`
	Skipped        []string `json:"skipped"`
}

func build(t *testing.T, file string) *Export {
	t.Helper()
	sc, err := scenarios.Parse(file)
	require.NoError(t, err)
	ex, err := Build(sc, Options{})
	require.NoError(t, err)
	return ex
}

func TestGolden(t *testing.T) {
	for name, file := range goldenCases {
		t.Run(name, func(t *testing.T) {
			ex := build(t, file)
			got, err := json.MarshalIndent(Golden{ex.Manifest(), ex.Approximations, ex.Skipped}, "", "  ")
			require.NoError(t, err)
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				require.NoError(t, os.WriteFile(path, append(got, '\n'), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(got))
		})
	}
}

// shape is a chaos template in a line: kind, action, mode, selector (and
// target), so that the mapping table below reads as the doc's.
func shape(tp v1alpha1.Template) string {
	sel := func(s v1alpha1.PodSelector) string {
		if len(s.Selector.Nodes) > 0 {
			return fmt.Sprintf("%s nodes=%v", s.Mode, s.Selector.Nodes)
		}
		return fmt.Sprintf("%s labels=%v", s.Mode, s.Selector.LabelSelectors)
	}
	switch {
	case tp.EmbedChaos == nil:
	case tp.PodChaos != nil:
		c := tp.PodChaos
		return fmt.Sprintf("PodChaos %s %s containers=%v", c.Action, sel(c.PodSelector), c.ContainerNames)
	case tp.NetworkChaos != nil:
		c := tp.NetworkChaos
		s := fmt.Sprintf("NetworkChaos %s %s %s", c.Action, c.Direction, sel(c.PodSelector))
		if c.Target != nil {
			s += " -> " + sel(*c.Target)
		}
		if c.Delay != nil {
			s += fmt.Sprintf(" delay=%s/%s", c.Delay.Latency, c.Delay.Jitter)
		}
		if c.Loss != nil {
			s += " loss=" + c.Loss.Loss + "%"
		}
		return s
	}
	return string(tp.Type) + " " + strings.Join(tp.Children, ",")
}

// The mapping, fault by fault (testdata/every-action.yaml).
func TestMappingTable(t *testing.T) {
	rest := func(but ...string) []string {
		var out []string
	node:
		for _, n := range []string{"dc1-n1", "dc1-n2", "dc1-n3", "dc2-n1", "dc2-n2", "dc3-n1"} {
			for _, b := range but {
				if n == b {
					continue node
				}
			}
			out = append(out, n)
		}
		return out
	}
	nodes := func(ns ...string) string { return fmt.Sprint(ns) }
	want := map[string]string{
		// power-off node: its pods fail
		"f0-power-off": "PodChaos pod-failure all nodes=[dc2-n2] containers=[]",
		// kill a member: SIGKILL of its pods' main container
		"f1-kill": "PodChaos container-kill all labels=map[chaosloop.io/member:etcd-1 chaosloop.io/service:etcd] containers=[main]",
		// isolate a site: its pods vs the others
		"f2-isolate": "NetworkChaos partition both all nodes=[dc3-n1] -> all nodes=" + nodes(rest("dc3-n1")...),
		// latency on a link: one site's pods vs the other's
		"f3-latency": "NetworkChaos delay both all nodes=[dc1-n1 dc1-n2 dc1-n3] -> all nodes=[dc2-n1 dc2-n2] delay=50ms/10ms",
		// a feed whose rack has only it
		"f6-power-off": "PodChaos pod-failure all nodes=[dc1-n3] containers=[]",
		// a rack's only switch: each of its nodes is alone (spec section 4)
		"f7-isolate":   "Parallel f7-isolate-0,f7-isolate-1",
		"f7-isolate-0": "NetworkChaos partition both all nodes=[dc1-n1] -> all nodes=" + nodes(rest("dc1-n1")...),
		"f7-isolate-1": "NetworkChaos partition both all nodes=[dc1-n2] -> all nodes=" + nodes(rest("dc1-n2")...),
		"f8-isolate":   "NetworkChaos partition both all nodes=[dc1-n3] -> all nodes=" + nodes(rest("dc1-n3")...),
		"f9-destroy":   "PodChaos pod-failure all nodes=[dc1-n3] containers=[]",
		"f10-isolate":  "NetworkChaos partition both all nodes=[dc2-n1] -> all nodes=" + nodes(rest("dc2-n1")...),
		// loss alone; delay and loss together go through netem
		"f11-latency": "NetworkChaos loss both all nodes=[dc2-n1] -> all nodes=" + nodes(rest("dc2-n1")...) + " loss=5%",
		"f12-latency": "NetworkChaos netem both all nodes=[dc2-n1 dc2-n2] -> all nodes=[dc3-n1] delay=1500ms/ loss=10%",
		// pause: cut off from everything; the leader: any member
		"f13-pause": "NetworkChaos partition both one labels=map[chaosloop.io/service:etcd]",
		"f14-kill":  "PodChaos container-kill one labels=map[chaosloop.io/service:handlers] containers=[main]",
		// a site power-off without for: until the load's end
		"f15-power-off": "PodChaos pod-failure all nodes=[dc3-n1] containers=[]",
		"f16-power-off": "PodChaos pod-failure all nodes=[dc1-n1 dc1-n2] containers=[]",
	}
	ex := build(t, "testdata/every-action.yaml")
	got := map[string]string{}
	for _, tp := range ex.Workflow.Spec.Templates {
		if strings.HasPrefix(tp.Name, "f") && !strings.HasSuffix(tp.Name, "-wait") {
			got[tp.Name] = shape(tp)
		}
	}
	require.Equal(t, want, got)
	// the faults that inject nothing alone: a feed of a two-feed rack, a
	// link whose traffic transits the third site
	require.Len(t, ex.Skipped, 2)
	require.Contains(t, ex.Skipped[0], "f4 power-off feed/dc1-pdu-a")
	require.Contains(t, ex.Skipped[1], "f5 isolate link/dc1/dc2")
	an := ex.Workflow.Annotations
	require.Equal(t, "power-off site/dc3 at 2m40s for 20s", an["chaosloop.io/fault.f15"])
	require.Contains(t, an["chaosloop.io/fault.f4"], "not exported")
	require.Contains(t, an["chaosloop.io/approximation.f0"], "cannot cut a node's power")
	require.Contains(t, an["chaosloop.io/approximation.f9"], "no disk is wiped")
	require.Contains(t, an["chaosloop.io/approximation.f13"], "cannot freeze")
	require.Contains(t, an["chaosloop.io/approximation.f13"], "leader")
	require.NotContains(t, an, "chaosloop.io/approximation.f4")
}

// Faults that do not overlap share a Serial branch, waits between them;
// overlapping ones go to parallel branches; deadlines are the faults'
// durations.
func TestSchedule(t *testing.T) {
	ex := build(t, "testdata/every-action.yaml")
	byName := map[string]v1alpha1.Template{}
	for _, tp := range ex.Workflow.Spec.Templates {
		byName[tp.Name] = tp
	}
	require.Equal(t, "entry", ex.Workflow.Spec.Entry)
	require.Equal(t, v1alpha1.TypeParallel, byName["entry"].Type)
	require.Equal(t, []string{"lane-0", "lane-1"}, byName["entry"].Children)
	require.Equal(t, []string{"f1-wait", "f1-kill", "f3-wait", "f3-latency", "f8-wait", "f8-isolate",
		"f10-wait", "f10-isolate", "f12-wait", "f12-latency", "f14-wait", "f14-kill", "f16-wait", "f16-power-off"},
		byName["lane-1"].Children)
	deadline := func(name string) string { return *byName[name].Deadline }
	require.Equal(t, "10s", deadline("f1-wait"))
	require.Equal(t, "30s", deadline("f8-wait"), "from f3's end (50s) to f8's start (80s)")
	require.Equal(t, "20s", deadline("f15-power-off"), "no for: until the load's end (3m)")
	require.Equal(t, "10s", deadline("f16-power-off"), "for 30s at 2m50s: cut at the load's end")
	require.Equal(t, "10s", deadline("f7-isolate-1"))
	require.Nil(t, byName["f7-isolate"].Deadline)

	// one lane: the entry is its Serial
	ex = build(t, "../scenarios/quickstart.yaml")
	tps := ex.Workflow.Spec.Templates
	require.Equal(t, v1alpha1.TypeSerial, tps[0].Type)
	require.Equal(t, []string{"f0-wait", "f0-power-off", "f1-wait", "f1-isolate"}, tps[0].Children)
}

// Without load, a fault without for lasts until the workflow is deleted:
// no deadline, and nothing follows it in its lane.
func TestUntilDeleted(t *testing.T) {
	sc, err := scenarios.Parse("testdata/every-action.yaml")
	require.NoError(t, err)
	sc.Load = nil
	sc.Faults = sc.Faults[15:] // power-off site/dc3 at 160s (no for), rack/dc1/r1 at 170s
	ex, err := Build(sc, Options{Namespace: "mojaloop"})
	require.NoError(t, err)
	tps := ex.Workflow.Spec.Templates
	require.Equal(t, v1alpha1.TypeParallel, tps[0].Type, "the open-ended fault keeps its lane")
	for _, tp := range tps {
		if tp.Name == "f0-power-off" {
			require.Nil(t, tp.Deadline)
			require.Equal(t, []string{"mojaloop"}, tp.PodChaos.Selector.Namespaces)
		}
	}
	require.Equal(t, "mojaloop", ex.Workflow.Namespace)
	require.Equal(t, "power-off site/dc3 at 2m40s until the end", ex.Workflow.Annotations["chaosloop.io/fault.f0"])
}

func TestNoFaults(t *testing.T) {
	sc, err := scenarios.Parse("testdata/no-faults.yaml")
	require.NoError(t, err)
	_, err = Build(sc, Options{})
	require.ErrorIs(t, err, ErrNoFaults)
	require.EqualError(t, err, "scenario no-faults has no faults: section: nothing to export")

	// faults, none of which injects anything
	sc, err = scenarios.Parse("testdata/every-action.yaml")
	require.NoError(t, err)
	sc.Faults = sc.Faults[4:6]
	_, err = Build(sc, Options{})
	require.ErrorContains(t, err, "none of its faults injects anything")
}

func TestTCDuration(t *testing.T) {
	for in, want := range map[string]string{"0s": "0s", "90s": "90s", "1.5s": "1500ms", "250us": "250us", "1500ns": "1500ns"} {
		d, err := time.ParseDuration(in)
		require.NoError(t, err)
		require.Equal(t, want, tcDuration(d), in)
	}
}
