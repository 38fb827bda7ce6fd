package topology

import (
	"fmt"

	"github.com/chaosloop/chaosloop/scenarios"
)

// State is a set of active failures, kept as counters so that failures can
// be applied and reverted incrementally (analysis walks hundreds of
// thousands of pairs without rebuilding anything). The zero failures state
// comes from NewState. A State is not safe for concurrent use.
type State struct {
	t *Topology

	// Power: a node is up when none of these counts it down.
	nodeOff      []int32 // node power-offs
	rackOff      []int32 // rack and site power-offs
	rackFeedsOff []int32 // failed feeds of the rack
	// siteOff counts power-offs of the site itself (not of its racks): they
	// also take the site's WAN router down, so nothing transits the site.
	siteOff []int32

	// Network.
	nodeIso   []int32 // node isolations
	rackIso   []int32 // rack isolations (uplinks cut)
	rackSwOff []int32 // isolated switches of the rack
	siteIso   []int32
	linkOff   []int32

	// siteGroup[s] is the representative site of s's WAN component.
	siteGroup []int32
	groupsOK  bool
	parent    []int32 // union-find scratch

	// scratch for judging
	counts  []int32
	touched []int32
	comp    []int32
	up      []bool
}

// NewState returns a state with nothing failed.
func NewState(t *Topology) *State {
	s := &State{
		t:            t,
		nodeOff:      make([]int32, len(t.Nodes)),
		rackOff:      make([]int32, len(t.Racks)),
		rackFeedsOff: make([]int32, len(t.Racks)),
		siteOff:      make([]int32, len(t.Sites)),
		nodeIso:      make([]int32, len(t.Nodes)),
		rackIso:      make([]int32, len(t.Racks)),
		rackSwOff:    make([]int32, len(t.Racks)),
		siteIso:      make([]int32, len(t.Sites)),
		linkOff:      make([]int32, len(t.Links)),
		siteGroup:    make([]int32, len(t.Sites)),
		parent:       make([]int32, len(t.Sites)),
		counts:       make([]int32, len(t.Sites)+len(t.Racks)+len(t.Nodes)),
	}
	maxMembers := 0
	for _, sv := range t.Services {
		maxMembers = max(maxMembers, len(sv.Members))
	}
	s.comp = make([]int32, maxMembers)
	s.up = make([]bool, maxMembers)
	s.touched = make([]int32, 0, maxMembers)
	return s
}

// Fault is one failure: an action on a target.
type Fault struct {
	Action string // scenarios.ActionPowerOff, ActionIsolate, ActionDestroy, ...
	Target scenarios.Target
}

func (f Fault) String() string { return f.Action + " " + f.Target.String() }

// Apply adds a fault to the state. Actions that do not change power or
// reachability (kill, pause, latency) are accepted and change nothing here:
// their effect on a member is modelled by the caller.
func (s *State) Apply(f Fault) error { return s.change(f, 1) }

// Revert removes a fault added by Apply.
func (s *State) Revert(f Fault) error { return s.change(f, -1) }

func (s *State) change(f Fault, d int32) error {
	e, err := s.t.resolve(f)
	if err == nil {
		s.add(e, d)
	}
	return err
}

// effect is a fault resolved to the counter it moves: analysis applies
// each domain's hundreds of millions of times, without looking names up.
type effect struct {
	what effectKind
	at   int // index of the node, rack, site, feed, switch or link
}

type effectKind uint8

const (
	noEffect effectKind = iota
	nodePowerOff
	rackPowerOff
	sitePowerOff
	feedOff
	nodeIsolated
	rackIsolated
	switchIsolated
	siteIsolated
	linkCut
)

// resolve finds what a fault changes.
func (t *Topology) resolve(f Fault) (effect, error) {
	tg := f.Target
	switch f.Action {
	case scenarios.ActionPowerOff, scenarios.ActionDestroy:
		switch tg.Kind {
		case scenarios.TargetNode:
			if n := t.Node(tg.Name); n != nil {
				return effect{nodePowerOff, n.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown node %q", tg.Name)
		case scenarios.TargetRack:
			if r := t.Rack(tg.Site, tg.Name); r != nil {
				return effect{rackPowerOff, r.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown rack %q", tg.String())
		case scenarios.TargetSite:
			if site := t.Site(tg.Name); site != nil {
				return effect{sitePowerOff, site.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown site %q", tg.Name)
		case scenarios.TargetFeed:
			if fd := t.Feed(tg.Name); fd != nil {
				return effect{feedOff, fd.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown feed %q", tg.Name)
		}
		return effect{}, fmt.Errorf("%s cannot target %s", f.Action, tg.String())
	case scenarios.ActionIsolate:
		switch tg.Kind {
		case scenarios.TargetNode:
			if n := t.Node(tg.Name); n != nil {
				return effect{nodeIsolated, n.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown node %q", tg.Name)
		case scenarios.TargetRack:
			if r := t.Rack(tg.Site, tg.Name); r != nil {
				return effect{rackIsolated, r.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown rack %q", tg.String())
		case scenarios.TargetSwitch:
			if sw := t.Switch(tg.Name); sw != nil {
				return effect{switchIsolated, sw.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown switch %q", tg.Name)
		case scenarios.TargetSite:
			if site := t.Site(tg.Name); site != nil {
				return effect{siteIsolated, site.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown site %q", tg.Name)
		case scenarios.TargetLink:
			if l := t.Link(tg.A, tg.B); l != nil {
				return effect{linkCut, l.Index}, nil
			}
			return effect{}, fmt.Errorf("unknown link %q", tg.String())
		}
		return effect{}, fmt.Errorf("isolate cannot target %s", tg.String())
	case scenarios.ActionKill, scenarios.ActionPause, scenarios.ActionLatency:
		// No change of power or reachability.
		return effect{}, nil
	}
	return effect{}, fmt.Errorf("unknown action %q", f.Action)
}

// add moves an effect's counters by d (1 to apply, -1 to revert).
func (s *State) add(e effect, d int32) {
	t := s.t
	switch e.what {
	case nodePowerOff:
		s.nodeOff[e.at] += d
	case rackPowerOff:
		s.rackOff[e.at] += d
	case sitePowerOff:
		addRacks(s.rackOff, t.Sites[e.at].Racks, d)
		s.siteOff[e.at] += d
		s.groupsOK = false
	case feedOff:
		addRacks(s.rackFeedsOff, t.Feeds[e.at].Racks, d)
	case nodeIsolated:
		s.nodeIso[e.at] += d
	case rackIsolated:
		s.rackIso[e.at] += d
	case switchIsolated:
		addRacks(s.rackSwOff, t.Switches[e.at].Racks, d)
	case siteIsolated:
		s.siteIso[e.at] += d
		s.groupsOK = false
	case linkCut:
		s.linkOff[e.at] += d
		s.groupsOK = false
	}
}

// addRacks moves a per-rack counter of some racks by d.
func addRacks(counter []int32, racks []*Rack, d int32) {
	for _, r := range racks {
		counter[r.Index] += d
	}
}

// Up reports whether a node has power: a node goes down when it, its rack or
// its site is powered off, or when every feed of its rack is off.
func (s *State) Up(n *Node) bool {
	r := n.Rack
	return s.nodeOff[n.Index] == 0 && s.rackOff[r.Index] == 0 && int(s.rackFeedsOff[r.Index]) < len(r.Feeds)
}

// Component returns the network component of an up node (section 4). Two
// up nodes reach each other exactly when their components are equal.
// Components are numbered: a site's WAN group by its representative site,
// then a rack cut off as a whole, then a node alone.
func (s *State) Component(n *Node) int32 {
	r := n.Rack
	if s.nodeIso[n.Index] > 0 || int(s.rackSwOff[r.Index]) == len(r.Switches) {
		return int32(len(s.t.Sites) + len(s.t.Racks) + n.Index)
	}
	if s.rackIso[r.Index] > 0 {
		return int32(len(s.t.Sites) + r.Index)
	}
	if !s.groupsOK {
		s.computeGroups()
	}
	return s.siteGroup[r.Site.Index]
}

// computeGroups joins sites over working links (a link works while it is
// not isolated and neither of its sites is isolated or powered off: a dark
// site's router carries nothing, section 4).
func (s *State) computeGroups() {
	for i := range s.parent {
		s.parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for s.parent[x] != x {
			s.parent[x] = s.parent[s.parent[x]]
			x = s.parent[x]
		}
		return x
	}
	for _, l := range s.t.Links {
		if s.linkOff[l.Index] > 0 || s.wanDown(l.A) || s.wanDown(l.B) {
			continue
		}
		a, b := find(int32(l.A.Index)), find(int32(l.B.Index))
		if a != b {
			s.parent[max(a, b)] = min(a, b)
		}
	}
	for i := range s.siteGroup {
		s.siteGroup[i] = find(int32(i))
	}
	s.groupsOK = true
}

// wanDown reports whether a site has no working link: the site is
// isolated or was itself powered off. Rack, feed and node power-offs leave
// the router running.
func (s *State) wanDown(site *Site) bool {
	return s.siteIso[site.Index] > 0 || s.siteOff[site.Index] > 0
}

// NodesDown returns the names of nodes without power, sorted.
func (s *State) NodesDown() []string {
	var down []*Node
	for _, n := range s.t.Nodes {
		if !s.Up(n) {
			down = append(down, n)
		}
	}
	return sortedNames(down)
}
