package scenarios

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Validate reports every structural problem of a scenario (normally one with
// defaults applied) as an Errors list. It never changes s. Each field is
// checked against its rule (rules.go, check.go); this file adds the rules
// that relate fields: unique names, references, placement, targets.
func (s *Scenario) Validate() error {
	return s.validate().err()
}

// validate is Validate's problems, for Parse to merge with decoding's.
func (s *Scenario) validate() *problems {
	v := &validator{s: s, errs: &problems{}, hidden: map[string]bool{
		"sites": s.namesHidden("sites"), "services": s.namesHidden("services"),
	}}
	v.fields(reflect.ValueOf(s).Elem(), "", "")
	v.scenario()
	return v.errs
}

type validator struct {
	s    *Scenario
	errs *problems
	// hidden says, per section, whether a name in it failed to decode
	// (worked out once: references to unknown names are then not reported).
	hidden map[string]bool
}

// add records a problem at path, unless path (or what holds it) failed to
// decode: that was reported already. String arguments are user input: they
// are clipped so that a huge value cannot flood the message (formats quote
// them with %q, which escapes control characters).
func (v *validator) add(path, format string, args ...any) {
	if v.s.failedAt(path) {
		return
	}
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = clip(s)
		}
	}
	v.errs.add(v.s.Errorf(path, format, args...))
}

// clipRunes is how much of a long user string messages show.
const clipRunes = 64

// clip shortens s to clipRunes runes, marking the cut with an ellipsis.
func clip(s string) string { return clipTo(s, clipRunes) }

// clipTo shortens s to n runes, marking the cut with an ellipsis.
func clipTo(s string, n int) string {
	k := 0
	for i := range s {
		if k == n {
			return s[:i] + "…"
		}
		k++
	}
	return s
}

type nameIndex struct {
	sites    map[string]int
	racks    map[string]bool // site/rack
	nodes    map[string]nodeRef
	feeds    map[string]string // feed -> site
	switches map[string]string // switch -> site
	pools    map[string]bool
	links    map[[2]string]bool
	services map[string]*Service
}

type nodeRef struct {
	site  string
	pools []string
	path  string
}

func (v *validator) scenario() {
	s := v.s
	idx := nameIndex{
		sites: map[string]int{}, racks: map[string]bool{}, nodes: map[string]nodeRef{},
		feeds: map[string]string{}, switches: map[string]string{}, pools: map[string]bool{},
		links: map[[2]string]bool{}, services: map[string]*Service{},
	}
	for i, site := range s.Sites {
		v.site(i, site, &idx)
	}
	for i, l := range s.Links {
		v.link(i, l, &idx)
	}
	for i := range s.Services {
		sv := &s.Services[i]
		if !validName(FormatLabel, sv.Name) {
			continue
		}
		if _, dup := idx.services[sv.Name]; dup {
			v.add(fmt.Sprintf("services[%d].name", i), "duplicate service name %q", sv.Name)
		} else {
			idx.services[sv.Name] = sv
		}
	}
	for i := range s.Services {
		v.service(i, &s.Services[i], &idx)
	}
	for i, f := range s.Faults {
		v.fault(i, f, &idx)
	}
	if s.Expect != nil {
		v.expect(&idx)
	}
}

func (v *validator) site(i int, site Site, idx *nameIndex) {
	p := fmt.Sprintf("sites[%d]", i)
	if validName(FormatLabel, site.Name) {
		if _, dup := idx.sites[site.Name]; dup {
			v.add(p+".name", "duplicate site name %q", site.Name)
		}
		idx.sites[site.Name] = i
	}
	for j, r := range site.Racks {
		rp := fmt.Sprintf("%s.racks[%d]", p, j)
		if validName(FormatLabel, r.Name) {
			key := site.Name + "/" + r.Name
			if idx.racks[key] {
				v.add(rp+".name", "duplicate rack name %q in site %q", r.Name, site.Name)
			}
			idx.racks[key] = true
		}
		v.shared(rp+".power", "power feed", r.Power, site.Name, idx.feeds)
		v.shared(rp+".switches", "switch", r.Switches, site.Name, idx.switches)
		for k, n := range r.Nodes {
			np := fmt.Sprintf("%s.nodes[%d]", rp, k)
			if validName(FormatLabel, n.Name) {
				if prev, dup := idx.nodes[n.Name]; dup {
					at := v.s.At(prev.path)
					v.add(np+".name", "duplicate node name %q (first at line %d)", n.Name, at.Line)
				} else {
					idx.nodes[n.Name] = nodeRef{site: site.Name, pools: n.Pools, path: np + ".name"}
				}
			}
			for _, pool := range n.Pools {
				idx.pools[pool] = true
			}
		}
	}
}

// shared checks that a rack's feed or switch serves racks of one site only
// (it may serve several racks of that site).
func (v *validator) shared(path, what string, names []string, site string, owner map[string]string) {
	for i, n := range names {
		if !validName(FormatLabel, n) {
			continue
		}
		if o, ok := owner[n]; ok && o != site {
			v.add(fmt.Sprintf("%s[%d]", path, i), "%s %q serves racks in sites %q and %q; a %s serves racks of one site only", what, n, o, site, what)
			continue
		}
		owner[n] = site
	}
}

func (v *validator) link(i int, l Link, idx *nameIndex) {
	p := fmt.Sprintf("links[%d]", i)
	if len(l.Between) != 2 {
		return
	}
	ok := true
	for j, site := range l.Between {
		if _, known := idx.sites[site]; !known {
			if validName(FormatLabel, site) && !v.hidden["sites"] {
				v.add(fmt.Sprintf("%s.between[%d]", p, j), "link: unknown site %q", site)
			}
			ok = false
		}
	}
	a, b := l.Between[0], l.Between[1]
	if a == b {
		return
	}
	if b < a {
		a, b = b, a
	}
	if ok && idx.links[[2]string{a, b}] {
		v.add(p+".between", "duplicate link between %q and %q", a, b)
	}
	idx.links[[2]string{a, b}] = true
}

func (v *validator) service(i int, sv *Service, idx *nameIndex) {
	p := fmt.Sprintf("services[%d]", i)
	replicas := sv.ReplicaCount()
	if replicas < 1 || v.s.failedAt(p+".replicas") {
		replicas = 0 // unknown: checks against it would only guess
	}
	if sv.Kind == KindKafka {
		v.kafka(p, sv, replicas, idx)
	}
	if !validName(FormatPool, sv.Pool) || v.hidden["sites"] {
		return // (with part of the sites unknown, so is what carries the pool)
	}
	if !idx.pools[sv.Pool] {
		v.add(p+".pool", "pool %q is carried by no node", sv.Pool)
		return
	}
	eligible := 0
	for _, n := range idx.nodes {
		if slices.Contains(n.pools, sv.Pool) {
			eligible++
		}
	}
	if len(sv.Placement) == 0 {
		if replicas > eligible && replicas <= MaxReplicas {
			v.add(p+".replicas", "service %q needs %d nodes carrying pool %q, but only %d do", sv.Name, replicas, sv.Pool, eligible)
		}
		return
	}
	if replicas > 0 && len(sv.Placement) != replicas {
		v.add(p+".placement", "placement names %d nodes but replicas is %d", len(sv.Placement), replicas)
	}
	for j, n := range sv.Placement {
		pp := fmt.Sprintf("%s.placement[%d]", p, j)
		ref, ok := idx.nodes[n]
		switch {
		case !validName(FormatLabel, n):
		case !ok:
			v.add(pp, "placement: unknown node %q", n)
		case !slices.Contains(ref.pools, sv.Pool):
			v.add(pp, "placement: node %q does not carry pool %q", n, sv.Pool)
		}
	}
}

// kafka checks a kafka service's replication factor against its brokers and
// its controller.
func (v *validator) kafka(p string, sv *Service, replicas int, idx *nameIndex) {
	if rf := sv.ReplicationFactor; rf != nil && replicas > 0 && *rf > replicas && *rf <= MaxReplicas {
		v.add(p+".replicationFactor", "replicationFactor %d exceeds the %d brokers (replicas)", *rf, replicas)
	}
	if c := sv.Controller; c != "" {
		if !validName(FormatLabel, c) {
			return
		}
		if ref, ok := idx.services[c]; !ok {
			if !v.hidden["services"] {
				v.add(p+".controller", "controller: unknown service %q", c)
			}
		} else if ref.Kind != KindZookeeper && ref.Kind != "" {
			v.add(p+".controller", "controller: service %q is a %s, want a zookeeper service", c, ref.Kind)
		}
	} else if zks := v.zookeepers(); len(zks) > 1 {
		v.add(p, "kafka service %q: controller is required (the scenario has several zookeeper services: %s)", sv.Name, quoteAll(zks))
	}
}

// servicePath returns the path of a service of the scenario.
func (v *validator) servicePath(sv *Service) string {
	for i := range v.s.Services {
		if &v.s.Services[i] == sv {
			return fmt.Sprintf("services[%d]", i)
		}
	}
	return ""
}

// zookeepers lists the zookeeper services' names in file order; kafka
// needs controller to pick one when there are several.
func (v *validator) zookeepers() []string {
	var out []string
	for _, sv := range v.s.Services {
		if sv.Kind == KindZookeeper {
			out = append(out, sv.Name)
		}
	}
	return out
}

// quoteAll quotes and joins names for a message.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(clip(n))
	}
	return strings.Join(q, ", ")
}

func (v *validator) fault(i int, f Fault, idx *nameIndex) {
	p := fmt.Sprintf("faults[%d]", i)
	if l := v.s.Load; f.At != nil && l != nil && l.Duration != nil && f.At.Duration >= l.Duration.Duration && !v.s.failedAt("load.duration") {
		v.add(p+".at", "fault at %s starts after the load ends (load.duration %s)", f.At, l.Duration)
	}
	if f.Target == "" {
		return
	}
	t, err := ParseTarget(f.Target)
	if err != nil {
		v.add(p+".target", "%v", err)
		return
	}
	if ok := v.targetExists(p+".target", t, idx); !ok {
		return
	}
	if kinds := actionTargets[f.Action]; kinds != nil && !slices.Contains(kinds, t.Kind) {
		v.add(p+".target", "%s cannot target a %s (it takes %s)", f.Action, t.Kind, strings.Join(kinds, ", "))
	}
}

func (v *validator) targetExists(path string, t Target, idx *nameIndex) bool {
	if v.hidden["sites"] && t.Kind != TargetService || v.hidden["services"] && t.Kind == TargetService {
		return true // the target may name what failed to decode
	}
	missing := func(what, name string) bool {
		v.add(path, "target %q: no %s named %q", t.String(), what, name)
		return false
	}
	switch t.Kind {
	case TargetSite:
		if _, ok := idx.sites[t.Name]; !ok {
			return missing("site", t.Name)
		}
	case TargetRack:
		if _, ok := idx.sites[t.Site]; !ok {
			return missing("site", t.Site)
		}
		if !idx.racks[t.Site+"/"+t.Name] {
			return missing("rack in site "+t.Site, t.Name)
		}
	case TargetNode:
		if _, ok := idx.nodes[t.Name]; !ok {
			return missing("node", t.Name)
		}
	case TargetFeed:
		if _, ok := idx.feeds[t.Name]; !ok {
			return missing("power feed", t.Name)
		}
	case TargetSwitch:
		if _, ok := idx.switches[t.Name]; !ok {
			return missing("switch", t.Name)
		}
	case TargetLink:
		for _, s := range []string{t.A, t.B} {
			if _, ok := idx.sites[s]; !ok {
				return missing("site", s)
			}
		}
		// Without a links list every pair of sites is linked.
		if len(v.s.Links) > 0 && !idx.links[[2]string{t.A, t.B}] {
			v.add(path, "target %q: no link between %q and %q", t.String(), t.A, t.B)
			return false
		}
	case TargetService:
		sv, ok := idx.services[t.Name]
		if !ok {
			return missing("service", t.Name)
		}
		if t.Member != "" && t.Member != "leader" && !v.s.failedAt(v.servicePath(sv)+".replicas") {
			var m int
			fmt.Sscan(t.Member, &m)
			if m >= sv.ReplicaCount() {
				v.add(path, "target %q: service %q has members 0..%d", t.String(), t.Name, sv.ReplicaCount()-1)
				return false
			}
		}
	}
	return true
}

// expect checks that a failover map names services.
func (v *validator) expect(idx *nameIndex) {
	f := v.s.Expect.Failover
	if f == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		if _, ok := idx.services[name]; !ok && !v.hidden["services"] {
			v.add("expect.failover."+name, "expect.failover: unknown service %q", name)
		}
	}
}
