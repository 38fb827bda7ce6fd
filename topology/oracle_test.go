package topology

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

// The oracle is a second, deliberately naive reading of the spec, written
// from its text with strings and maps: it builds the physical graph (nodes,
// switches, site routers, WAN links), finds components by breadth-first
// search, places members and judges services. The fast implementation must
// agree with it on every failure of many random topologies.

type oNode struct {
	name, site, rack string // rack = "site/rack"
	pools            []string
	feeds, switches  []string
}

type oracle struct {
	sc    *scenarios.Scenario
	nodes []oNode // file order
	links [][2]string
	// mut breaks one rule on purpose, for the negative controls: the
	// comparison must then fail on some random topology.
	mut mutation
}

type mutation int

const (
	noMutation        mutation = iota
	darkSitesTransit           // forget that a powered-off site's router is down
	noKafkaController          // forget kafka's control plane
	allKRaftVoters             // every broker a KRaft controller, however many
)

func newOracle(sc *scenarios.Scenario) *oracle {
	o := &oracle{sc: sc}
	for _, s := range sc.Sites {
		for _, r := range s.Racks {
			for _, n := range r.Nodes {
				o.nodes = append(o.nodes, oNode{name: n.Name, site: s.Name, rack: s.Name + "/" + r.Name, pools: n.Pools, feeds: r.Power, switches: r.Switches})
			}
		}
	}
	if len(sc.Links) == 0 {
		for i, a := range sc.Sites {
			for _, b := range sc.Sites[i+1:] {
				o.links = append(o.links, sorted2(a.Name, b.Name))
			}
		}
	} else {
		for _, l := range sc.Links {
			o.links = append(o.links, sorted2(l.Between[0], l.Between[1]))
		}
	}
	return o
}

func sorted2(a, b string) [2]string {
	if b < a {
		return [2]string{b, a}
	}
	return [2]string{a, b}
}

// domains lists the spec's failure domains as paths, sorted.
func (o *oracle) domains() []string {
	var d []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			d = append(d, p)
		}
	}
	for _, s := range o.sc.Sites {
		add("site/" + s.Name)
		for _, r := range s.Racks {
			add("rack/" + s.Name + "/" + r.Name)
			for _, f := range r.Power {
				add("feed/" + f)
			}
			for _, sw := range r.Switches {
				add("switch/" + sw)
			}
		}
	}
	for _, n := range o.nodes {
		add("node/" + n.name)
	}
	for _, l := range o.links {
		add("link/" + l[0] + "/" + l[1])
	}
	slices.Sort(d)
	return d
}

// world is the state of the oracle under a set of failed domains.
type world struct {
	up   map[string]bool
	comp map[string]int // up node -> component id
}

func (o *oracle) apply(paths []string) world {
	offNodes, offRacks, offSites, offFeeds := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	cutSw, cutLinks := map[string]bool{}, map[[2]string]bool{}
	for _, p := range paths {
		parts := strings.Split(p, "/")
		switch parts[0] {
		case "node":
			offNodes[parts[1]] = true
		case "rack":
			offRacks[parts[1]+"/"+parts[2]] = true
		case "site":
			offSites[parts[1]] = true
		case "feed":
			offFeeds[parts[1]] = true
		case "switch":
			cutSw[parts[1]] = true
		case "link":
			cutLinks[[2]string{parts[1], parts[2]}] = true
		}
	}
	w := world{up: map[string]bool{}, comp: map[string]int{}}
	adj := map[string][]string{}
	edge := func(a, b string) { adj[a] = append(adj[a], b); adj[b] = append(adj[b], a) }
	for _, n := range o.nodes {
		allFeedsOff := true
		for _, f := range n.feeds {
			if !offFeeds[f] {
				allFeedsOff = false
			}
		}
		if offNodes[n.name] || offRacks[n.rack] || offSites[n.site] || allFeedsOff {
			continue
		}
		w.up[n.name] = true
		for _, sw := range n.switches {
			if !cutSw[sw] {
				edge("node:"+n.name, "switch:"+sw)
				edge("switch:"+sw, "router:"+n.site)
			}
		}
	}
	// A site's router has power unless the site itself is powered off
	// (racks, feeds and nodes do not feed it); a dark router carries nothing.
	routerUp := func(site string) bool { return !offSites[site] || o.mut == darkSitesTransit }
	for _, l := range o.links {
		if !cutLinks[l] && routerUp(l[0]) && routerUp(l[1]) {
			edge("router:"+l[0], "router:"+l[1])
		}
	}
	id := 0
	for _, n := range o.nodes {
		if !w.up[n.name] {
			continue
		}
		if _, done := w.comp[n.name]; done {
			continue
		}
		id++
		queue := []string{"node:" + n.name}
		seen := map[string]bool{queue[0]: true}
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			if name, ok := strings.CutPrefix(v, "node:"); ok {
				w.comp[name] = id
			}
			for _, x := range adj[v] {
				if !seen[x] {
					seen[x] = true
					queue = append(queue, x)
				}
			}
		}
	}
	return w
}

// place follows section 3 literally.
func (o *oracle) place(sv *scenarios.Service) []oNode {
	byName := map[string]oNode{}
	for _, n := range o.nodes {
		byName[n.name] = n
	}
	if len(sv.Placement) > 0 {
		var out []oNode
		for _, p := range sv.Placement {
			out = append(out, byName[p])
		}
		return out
	}
	unit := func(n oNode) string {
		switch sv.Spread {
		case "site":
			return n.site
		case "node":
			return n.name
		}
		return n.rack
	}
	var units []string // file order
	for _, n := range o.nodes {
		if !slices.Contains(units, unit(n)) {
			units = append(units, unit(n))
		}
	}
	var out []oNode
	used := map[string]bool{}
	inUnit, inRack := map[string]int{}, map[string]int{}
	for range *sv.Replicas {
		best := ""
		for _, u := range units {
			free := false
			for _, n := range o.nodes {
				if unit(n) == u && !used[n.name] && slices.Contains(n.pools, sv.Pool) {
					free = true
				}
			}
			if free && (best == "" || inUnit[u] < inUnit[best]) {
				best = u
			}
		}
		var pick *oNode
		for i, n := range o.nodes {
			if unit(n) == best && !used[n.name] && slices.Contains(n.pools, sv.Pool) {
				if pick == nil || inRack[n.rack] < inRack[pick.rack] {
					pick = &o.nodes[i]
				}
			}
		}
		used[pick.name] = true
		inUnit[best]++
		inRack[pick.rack]++
		out = append(out, *pick)
	}
	return out
}

// partitions follows section 3's Kafka rule, returning member indexes.
func (o *oracle) partitions(members []oNode, sv *scenarios.Service) [][]int {
	var racks []string
	for _, n := range o.nodes {
		if !slices.Contains(racks, n.rack) {
			racks = append(racks, n.rack)
		}
	}
	fileIdx := map[string]int{}
	for i, n := range o.nodes {
		fileIdx[n.name] = i
	}
	perRack := map[string][]int{}
	for i, m := range members {
		perRack[m.rack] = append(perRack[m.rack], i)
	}
	for _, l := range perRack {
		slices.SortFunc(l, func(a, b int) int { return cmp.Compare(fileIdx[members[a].name], fileIdx[members[b].name]) })
	}
	var list []int
	for k := 0; len(list) < len(members); k++ {
		for _, r := range racks {
			if k < len(perRack[r]) {
				list = append(list, perRack[r][k])
			}
		}
	}
	var out [][]int
	for p := range *sv.Partitions {
		var reps []int
		for k := range *sv.ReplicationFactor {
			reps = append(reps, list[(p+k)%len(list)])
		}
		out = append(out, reps)
	}
	return out
}

type oVerdict struct {
	verdict   string
	membersUp int
	loss      bool
}

// controller returns kafka's controller members (section 5): the named
// zookeeper service's, the only zookeeper service's, or KRaft voters among
// its own brokers.
func (o *oracle) controller(sv *scenarios.Service, members []oNode) []oNode {
	var zks []*scenarios.Service
	for i := range o.sc.Services {
		z := &o.sc.Services[i]
		if z.Kind == "zookeeper" && (sv.Controller == "" || sv.Controller == z.Name) {
			zks = append(zks, z)
		}
	}
	if len(zks) == 1 {
		return o.place(zks[0])
	}
	if len(members) <= 5 || o.mut == allKRaftVoters {
		return members
	}
	return members[:3]
}

func (o *oracle) judge(w world, sv *scenarios.Service, members []oNode) oVerdict {
	n := len(members)
	count := map[int]int{}
	lowest := map[int]int{}
	for i, m := range members {
		if w.up[m.name] {
			c := w.comp[m.name]
			if _, ok := lowest[c]; !ok {
				lowest[c] = i
			}
			count[c]++
		}
	}
	if len(count) == 0 {
		return oVerdict{verdict: "down"}
	}
	serving := -1
	for c := range count {
		if serving < 0 || count[c] > count[serving] || (count[c] == count[serving] && lowest[c] < lowest[serving]) {
			serving = c
		}
	}
	in := func(i int) bool { return w.up[members[i].name] && w.comp[members[i].name] == serving }
	up := count[serving]
	okOrDeg := "ok"
	if up < n {
		okOrDeg = "degraded"
	}
	v := oVerdict{membersUp: up}
	switch {
	case sv.Kind == "kafka":
		v.verdict = okOrDeg
		for _, reps := range o.partitions(members, sv) {
			any, insync := false, 0
			for _, m := range reps {
				if w.up[members[m].name] {
					any = true
				}
				if in(m) {
					insync++
				}
			}
			if !any {
				v.verdict = "down"
				return v
			}
			if insync < *sv.MinInSync {
				v.verdict = "read-only"
			}
		}
		if o.mut == noKafkaController {
			break
		}
		ctrl := o.controller(sv, members)
		votes := 0
		for _, c := range ctrl {
			if w.up[c.name] && w.comp[c.name] == serving {
				votes++
			}
		}
		if 2*votes > len(ctrl) {
			break
		}
		// No controller quorum: leaders and in-sync sets are frozen.
		for _, reps := range o.partitions(members, sv) {
			if !in(reps[0]) {
				v.verdict = "down"
				return v
			}
			for _, m := range reps {
				if !in(m) {
					v.verdict = "read-only"
				}
			}
		}
	case sv.Kind == "mysql" && sv.Replication == "async":
		replicaUp := false
		for i := 1; i < n; i++ {
			if w.up[members[i].name] {
				replicaUp = true
			}
		}
		switch {
		case in(0):
			v.verdict = okOrDeg
		case replicaUp:
			v.verdict, v.loss = "read-only", true
		default:
			v.verdict = "down"
		}
	case slices.Contains([]string{"etcd", "zookeeper", "raft", "mongodb", "mysql"}, sv.Kind):
		if up*2 > n {
			v.verdict = okOrDeg
		} else {
			v.verdict = "read-only"
		}
	case sv.Kind == "redis":
		switch {
		case in(0):
			v.verdict = okOrDeg
		case up*2 > n:
			v.verdict, v.loss = "degraded", true
		default:
			v.verdict = "down"
		}
	default:
		v.verdict = okOrDeg
	}
	return v
}

func TestAnalysisMatchesOracleOnRandomTopologies(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 60
	}
	for it := range iterations {
		if err := compareWithOracle(uint64(it), noMutation); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOracleComparisonCatchesMutations is the negative control: with one of
// the rules broken in the oracle, the comparison must fail on some random
// topology, or the generator does not exercise that rule.
func TestOracleComparisonCatchesMutations(t *testing.T) {
	for _, m := range []struct {
		name string
		mut  mutation
	}{{"dark sites transit", darkSitesTransit}, {"no kafka controller", noKafkaController}, {"all brokers KRaft voters", allKRaftVoters}} {
		t.Run(m.name, func(t *testing.T) {
			for it := range 300 {
				if compareWithOracle(uint64(it), m.mut) != nil {
					return
				}
			}
			t.Fatalf("no random topology tells the mutation %q apart", m.name)
		})
	}
}

// compareWithOracle generates the scenario of a seed and compares placement,
// partitions and every depth-2 judgement with the oracle's.
func compareWithOracle(seed uint64, mut mutation) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	sc := genScenario(r)
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("seed %d: %v", seed, err)
	}
	topo, err := Build(sc)
	if err != nil {
		return fmt.Errorf("seed %d: %v", seed, err)
	}
	o := newOracle(sc)
	o.mut = mut

	// Placement and partition assignment.
	members := make([][]oNode, len(sc.Services))
	for i := range sc.Services {
		members[i] = o.place(&sc.Services[i])
		var got, want []string
		for _, n := range topo.Services[i].Members {
			got = append(got, n.Name)
		}
		for _, n := range members[i] {
			want = append(want, n.name)
		}
		if !slices.Equal(want, got) {
			return fmt.Errorf("seed %d: placement of %s: want %v, got %v", seed, sc.Services[i].Name, want, got)
		}
		if sc.Services[i].Kind == "kafka" {
			if want, got := o.partitions(members[i], &sc.Services[i]), topo.Services[i].Partitions; !reflect.DeepEqual(want, got) {
				return fmt.Errorf("seed %d: partitions of %s: want %v, got %v", seed, sc.Services[i].Name, want, got)
			}
		}
	}

	a := topo.Analyze(2)
	doms := o.domains()
	paths := make([]string, len(a.Domains))
	for i, d := range a.Domains {
		paths[i] = d.Path
	}
	if !slices.Equal(doms, paths) {
		return fmt.Errorf("seed %d: domains: want %v, got %v", seed, doms, paths)
	}
	if want := len(doms) + len(doms)*(len(doms)-1)/2; len(a.Failures) != want {
		return fmt.Errorf("seed %d: %d failures, want %d", seed, len(a.Failures), want)
	}

	worst := "ok"
	rank := map[string]int{"ok": 0, "degraded": 1, "read-only": 2, "down": 3}
	prev := []string(nil)
	for k := range a.Failures {
		f := &a.Failures[k]
		fp := a.DomainPaths(f)
		if prev != nil && slices.Compare(prev, fp) >= 0 {
			return fmt.Errorf("seed %d: failures out of order: %v then %v", seed, prev, fp)
		}
		prev = fp
		w := o.apply(fp)
		var wantDown []string
		for _, n := range o.nodes {
			if !w.up[n.name] {
				wantDown = append(wantDown, n.name)
			}
		}
		slices.Sort(wantDown)
		if len(wantDown) > 0 || k%17 == 0 {
			if got := nilIfEmpty(a.NodesDown(f)); !slices.Equal(wantDown, got) {
				return fmt.Errorf("seed %d: nodesDown %v: want %v, got %v", seed, fp, wantDown, got)
			}
		}
		for i := range sc.Services {
			want := o.judge(w, &sc.Services[i], members[i])
			j := f.Judgements[i]
			if got := (oVerdict{j.Verdict.String(), int(j.MembersUp), j.LossPossible}); got != want {
				return fmt.Errorf("seed %d: %s (%s) under %v: want %+v, got %+v", seed, sc.Services[i].Name, sc.Services[i].Kind, fp, want, got)
			}
			if rank[want.verdict] > rank[worst] {
				worst = want.verdict
			}
		}
	}
	if worst != a.Worst.String() || (rank[worst] <= 1) != a.SurvivesAll {
		return fmt.Errorf("seed %d: worst %s survivesAll %v, want %s", seed, a.Worst, a.SurvivesAll, worst)
	}
	return nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestOracleSelfCheck(t *testing.T) {
	// The oracle itself must see a single-switch rack cut off and a
	// transit site carry traffic: guards against a vacuous oracle.
	sc := &scenarios.Scenario{Name: "x", Sites: []scenarios.Site{
		{Name: "a", Racks: []scenarios.Rack{{Name: "r", Power: []string{"fa"}, Switches: []string{"swa"}, Nodes: []scenarios.Node{{Name: "a1"}, {Name: "a2"}}}}},
		{Name: "b", Racks: []scenarios.Rack{{Name: "r", Power: []string{"fb"}, Switches: []string{"swb"}, Nodes: []scenarios.Node{{Name: "b1"}}}}},
		{Name: "c", Racks: []scenarios.Rack{{Name: "r", Power: []string{"fc"}, Switches: []string{"swc"}, Nodes: []scenarios.Node{{Name: "c1"}}}}},
	}, Links: []scenarios.Link{{Between: []string{"a", "b"}}, {Between: []string{"b", "c"}}}}
	o := newOracle(sc)
	w := o.apply(nil)
	require.Equal(t, w.comp["a1"], w.comp["c1"], "transit through b")
	w = o.apply([]string{"link/b/c"})
	require.NotEqual(t, w.comp["a1"], w.comp["c1"])
	w = o.apply([]string{"switch/swa"})
	require.NotEqual(t, w.comp["a1"], w.comp["a2"])
	w = o.apply([]string{"site/b"})
	require.NotEqual(t, w.comp["a1"], w.comp["c1"], "a dark site transits nothing")
	w = o.apply([]string{"rack/b/r"})
	require.Equal(t, w.comp["a1"], w.comp["c1"], "a site whose racks are dark still transits")
	w = o.apply([]string{"feed/fa"})
	require.False(t, w.up["a1"])
	require.Equal(t, fmt.Sprint(w.comp["b1"]), fmt.Sprint(w.comp["c1"]))
}
