package scenarios

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Names of the scenario, sites, racks, feeds, switches, nodes and services
// are DNS-1123 labels (they become host names, Kubernetes node names and
// label values); pool names have the same shape in upper case.
var (
	labelName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	poolName  = regexp.MustCompile(`^[A-Z0-9]([-A-Z0-9]*[A-Z0-9])?$`)
)

// MaxNameLen is the longest name a DNS-1123 label allows.
const MaxNameLen = 63

// Validate reports every structural problem of a scenario (normally one with
// defaults applied) as an Errors list. It never changes s.
func (s *Scenario) Validate() error {
	return s.validate().err()
}

func (s *Scenario) validate() *problems {
	v := &validator{s: s, errs: &problems{}, hidden: map[string]bool{
		"sites": s.namesHidden("sites"), "services": s.namesHidden("services"),
	}}
	v.scenario()
	return v.errs
}

type validator struct {
	s    *Scenario
	errs *problems
	// hidden tells, for "sites" and "services", whether a name there failed
	// to decode: references to what is missing are then not reported.
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

// required reports a missing or empty required string field.
func (v *validator) required(path, val string) bool {
	if val == "" {
		v.add(path, "%s is required", path)
		return false
	}
	return true
}

// checkName checks a required DNS-1123 label; what names it in messages
// ("site name").
func (v *validator) checkName(path, what, val string) bool {
	if !v.required(path, val) {
		return false
	}
	if len(val) > MaxNameLen {
		v.add(path, "%s %q is too long: %d characters, at most %d", what, val, len(val), MaxNameLen)
		return false
	}
	if !labelName.MatchString(val) {
		v.add(path, "%s %q is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)", what, val)
		return false
	}
	return true
}

// checkPool checks a required pool name: a label in upper case.
func (v *validator) checkPool(path, val string) bool {
	if !v.required(path, val) {
		return false
	}
	if len(val) > MaxNameLen {
		v.add(path, "pool %q is too long: %d characters, at most %d", val, len(val), MaxNameLen)
		return false
	}
	if !poolName.MatchString(val) {
		v.add(path, "pool %q is not a pool name (upper-case letters, digits and '-', starting and ending with a letter or digit)", val)
		return false
	}
	return true
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
	v.checkName("name", "scenario name", s.Name)
	if len(s.Sites) == 0 {
		v.add("sites", "sites: at least one site is required")
	}
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
		p := fmt.Sprintf("services[%d]", i)
		if v.checkName(p+".name", "service name", sv.Name) {
			if _, dup := idx.services[sv.Name]; dup {
				v.add(p+".name", "duplicate service name %q", sv.Name)
			} else {
				idx.services[sv.Name] = sv
			}
		}
	}
	for i := range s.Services {
		v.service(i, &s.Services[i], &idx)
	}
	if s.Load != nil {
		v.load()
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
	if v.checkName(p+".name", "site name", site.Name) {
		if _, dup := idx.sites[site.Name]; dup {
			v.add(p+".name", "duplicate site name %q", site.Name)
		}
		idx.sites[site.Name] = i
	}
	if len(site.Racks) == 0 {
		v.add(p+".racks", "site %q: at least one rack is required", site.Name)
	}
	for j, r := range site.Racks {
		rp := fmt.Sprintf("%s.racks[%d]", p, j)
		if v.checkName(rp+".name", "rack name", r.Name) {
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
			if v.checkName(np+".name", "node name", n.Name) {
				if prev, dup := idx.nodes[n.Name]; dup {
					at := v.s.At(prev.path)
					v.add(np+".name", "duplicate node name %q (first at line %d)", n.Name, at.Line)
				} else {
					idx.nodes[n.Name] = nodeRef{site: site.Name, pools: n.Pools, path: np + ".name"}
				}
			}
			seen := map[string]bool{}
			for m, pool := range n.Pools {
				pp := fmt.Sprintf("%s.pools[%d]", np, m)
				if !v.checkPool(pp, pool) {
					continue
				}
				if seen[pool] {
					v.add(pp, "node %q lists pool %q twice", n.Name, pool)
				}
				seen[pool] = true
				idx.pools[pool] = true
			}
			if n.CPU != nil && *n.CPU < 0 {
				v.add(np+".cpu", "cpu must not be negative")
			}
		}
	}
}

// shared checks a rack's feeds or switches: at least one, no repeats, and a
// name used in one site only (a feed or switch may serve several racks of
// one site).
func (v *validator) shared(path, what string, names []string, site string, owner map[string]string) {
	if len(names) == 0 {
		v.add(path, "%s: at least one %s is required", path, what)
	}
	seen := map[string]bool{}
	for i, n := range names {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !v.checkName(p, what+" name", n) {
			continue
		}
		if seen[n] {
			v.add(p, "%s %q is listed twice for this rack", what, n)
		}
		seen[n] = true
		if o, ok := owner[n]; ok && o != site {
			v.add(p, "%s %q serves racks in sites %q and %q; a %s serves racks of one site only", what, n, o, site, what)
			continue
		}
		owner[n] = site
	}
}

func (v *validator) link(i int, l Link, idx *nameIndex) {
	p := fmt.Sprintf("links[%d]", i)
	if len(l.Between) != 2 {
		v.add(p+".between", "link: between must name exactly two sites, got %d", len(l.Between))
		return
	}
	ok := true
	for j, site := range l.Between {
		if _, known := idx.sites[site]; !known && !v.hidden["sites"] {
			v.add(fmt.Sprintf("%s.between[%d]", p, j), "link: unknown site %q", site)
			ok = false
		}
	}
	a, b := l.Between[0], l.Between[1]
	if a == b {
		v.add(p+".between", "link: a link joins two different sites, got %q twice", a)
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
	if sv.Kind == "" {
		v.add(p+".kind", "kind is required (one of %s)", strings.Join(Kinds, ", "))
	} else if !slices.Contains(Kinds, sv.Kind) {
		v.add(p+".kind", "unknown kind %q (one of %s)", sv.Kind, strings.Join(Kinds, ", "))
	}
	if sv.Replication != "" {
		if sv.Kind != KindMySQL {
			v.add(p+".replication", "replication applies to mysql services only")
		} else if sv.Replication != ReplicationGroup && sv.Replication != ReplicationAsync {
			v.add(p+".replication", "unknown replication %q (group or async)", sv.Replication)
		}
	}
	if sv.Kind != KindKafka {
		for _, f := range []struct {
			name string
			set  bool
		}{{"replicationFactor", sv.ReplicationFactor != nil}, {"minInSync", sv.MinInSync != nil}, {"partitions", sv.Partitions != nil}, {"controller", sv.Controller != ""}} {
			if f.set && v.s.Has(p+"."+f.name) {
				v.add(p+"."+f.name, "%s applies to kafka services only", f.name)
			}
		}
	}
	switch sv.Spread {
	case "", SpreadSite, SpreadRack, SpreadNode:
	default:
		v.add(p+".spread", "unknown spread %q (site, rack or node)", sv.Spread)
	}
	replicas := sv.ReplicaCount()
	if v.s.failedAt(p + ".replicas") {
		replicas = 0 // unknown: checks against it would only guess
	}
	if sv.Replicas != nil && *sv.Replicas < 1 {
		v.add(p+".replicas", "replicas must be at least 1")
		replicas = 0
	}
	if sv.Kind == KindKafka {
		if rf := sv.ReplicationFactor; rf != nil {
			if *rf < 1 {
				v.add(p+".replicationFactor", "replicationFactor must be at least 1")
			} else if replicas > 0 && *rf > replicas {
				v.add(p+".replicationFactor", "replicationFactor %d exceeds the %d brokers (replicas)", *rf, replicas)
			}
		}
		if m := sv.MinInSync; m != nil && *m < 1 {
			v.add(p+".minInSync", "minInSync must be at least 1")
		}
		if pt := sv.Partitions; pt != nil && *pt < 1 {
			v.add(p+".partitions", "partitions must be at least 1")
		}
		if c := sv.Controller; c != "" {
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
	if !v.checkPool(p+".pool", sv.Pool) || v.hidden["sites"] {
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
		if replicas > eligible {
			v.add(p+".replicas", "service %q needs %d nodes carrying pool %q, but only %d do", sv.Name, replicas, sv.Pool, eligible)
		}
		return
	}
	if replicas > 0 && len(sv.Placement) != replicas {
		v.add(p+".placement", "placement names %d nodes but replicas is %d", len(sv.Placement), replicas)
	}
	seen := map[string]bool{}
	for j, n := range sv.Placement {
		pp := fmt.Sprintf("%s.placement[%d]", p, j)
		ref, ok := idx.nodes[n]
		switch {
		case !ok:
			v.add(pp, "placement: unknown node %q", n)
		case seen[n]:
			v.add(pp, "placement: node %q is named twice (one member per node)", n)
		case !slices.Contains(ref.pools, sv.Pool):
			v.add(pp, "placement: node %q does not carry pool %q", n, sv.Pool)
		}
		seen[n] = true
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

func (v *validator) load() {
	l := v.s.Load
	if l.Rate != nil && *l.Rate <= 0 {
		v.add("load.rate", "load.rate must be positive")
	}
	if l.Duration != nil && l.Duration.Duration <= 0 {
		v.add("load.duration", "load.duration must be positive")
	}
	if l.Participants != nil && *l.Participants < 2 {
		v.add("load.participants", "load.participants must be at least 2 (transfers go between DFSPs)")
	}
}

func (v *validator) fault(i int, f Fault, idx *nameIndex) {
	p := fmt.Sprintf("faults[%d]", i)
	if f.At == nil {
		v.add(p+".at", "at is required")
	} else if l := v.s.Load; l != nil && l.Duration != nil && f.At.Duration >= l.Duration.Duration && !v.s.failedAt("load.duration") {
		v.add(p+".at", "fault at %s starts after the load ends (load.duration %s)", f.At, l.Duration)
	}
	if f.For != nil && f.For.Duration <= 0 {
		v.add(p+".for", "for must be positive (omit it to keep the fault until the end)")
	}
	if f.Action == "" {
		v.add(p+".action", "action is required (one of %s)", strings.Join(Actions, ", "))
	} else if !slices.Contains(Actions, f.Action) {
		v.add(p+".action", "unknown action %q (one of %s)", f.Action, strings.Join(Actions, ", "))
	}
	if f.Action != ActionLatency {
		for _, name := range []string{"delay", "jitter", "loss"} {
			if v.s.Has(p + "." + name) {
				v.add(p+"."+name, "%s applies to latency faults only", name)
			}
		}
	} else if f.Delay == nil && f.Loss == nil {
		v.add(p, "a latency fault needs delay (and optionally jitter, loss)")
	}
	if f.Loss != nil && (*f.Loss < 0 || *f.Loss > 1) {
		v.add(p+".loss", "loss must be between 0 and 1")
	}
	if f.Target == "" {
		v.add(p+".target", "target is required")
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

func (v *validator) expect(idx *nameIndex) {
	e := v.s.Expect
	if f := e.Failover; f != nil {
		if f.All != nil && f.All.Duration <= 0 {
			v.add("expect.failover", "expect.failover must be positive")
		}
		for _, name := range slices.Sorted(maps.Keys(f.Services)) {
			p := "expect.failover." + name
			if _, ok := idx.services[name]; !ok && !v.hidden["services"] {
				v.add(p, "expect.failover: unknown service %q", name)
			}
			if f.Services[name].Duration <= 0 {
				v.add(p, "expect.failover: the budget of %q must be positive", name)
			}
		}
	}
	if e.Quorum != "" && e.Quorum != "held" && e.Quorum != "any" {
		v.add("expect.quorum", "unknown expect.quorum %q (held or any)", e.Quorum)
	}
	if e.AcknowledgedLoss != nil && *e.AcknowledgedLoss < 0 {
		v.add("expect.acknowledgedLoss", "expect.acknowledgedLoss must not be negative")
	}
	if e.Throughput != nil && (*e.Throughput < 0 || *e.Throughput > 1) {
		v.add("expect.throughput", "expect.throughput is a fraction of baseline between 0 and 1")
	}
}
