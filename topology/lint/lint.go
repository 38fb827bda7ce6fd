// Package lint checks a placed topology against the seed document's
// deployment recommendations: pool sizes, node sizes, replica counts, Kafka
// replication, anti-affinity across racks, feeds and switches, pools that
// must not be merged, and sites whose loss breaks a service.
package lint

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
	"github.com/chaosloop/chaosloop/topology/pools"
)

// Severity of a finding. Errors make `validate` exit 1.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Rule ids.
const (
	RulePoolSize         = "pool-size"
	RulePoolEven         = "pool-even"
	RuleUnknownPool      = "unknown-pool"
	RuleNodeSize         = "node-size"
	RuleQuorumReplicas   = "quorum-replicas"
	RuleQuorumEven       = "quorum-even"
	RuleKafkaRF          = "kafka-replication-factor"
	RuleKafkaMinISR      = "kafka-min-insync"
	RuleSharedRack       = "shared-rack"
	RuleSharedFeed       = "shared-feed"
	RuleSharedSwitch     = "shared-switch"
	RulePoolMerge        = "pool-merge"
	RulePoolMergeUntried = "pool-merge-untested"
	RulePoolMergeFeature = "pool-merge-feature"
	RuleSiteMajority     = "site-majority"
)

// Finding is one recommendation the scenario does not follow.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	Path     string   `json:"path,omitempty"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s [%s]", f.File, f.Line, f.Column, f.Severity, f.Message, f.Rule)
}

type linter struct {
	t     *topology.Topology
	sc    *scenarios.Scenario
	seed  *pools.Table
	st    *topology.State // for judging a site's loss
	found []Finding
}

func (l *linter) add(rule string, sev Severity, path, format string, args ...any) {
	p := l.sc.At(path)
	l.found = append(l.found, Finding{Rule: rule, Severity: sev, Message: fmt.Sprintf(format, args...),
		File: l.sc.File, Line: p.Line, Column: p.Column, Path: path})
}

// Check returns every finding for a topology, in file order.
func Check(t *topology.Topology) []Finding {
	fs, _ := CheckContext(context.Background(), t) // never cancelled
	return fs
}

// CheckContext is Check, stopping with ctx's error when ctx is done (it is
// looked at between services: each costs a pass over its pool at most).
func CheckContext(ctx context.Context, t *topology.Topology) ([]Finding, error) {
	l := &linter{t: t, sc: t.Scenario, seed: pools.Seed(), st: topology.NewState(t)}
	l.poolSizes()
	l.nodeSizes()
	l.merges()
	for _, sv := range t.Services {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.replicas(sv)
		l.kafka(sv)
		l.antiAffinity(sv)
		l.siteMajority(sv)
		l.siteLoss(sv)
	}
	slices.SortStableFunc(l.found, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), strings.Compare(a.Rule, b.Rule))
	})
	return l.found, nil
}

// poolPath is where a pool is first written on a node.
func poolPath(n *topology.Node, pool string) string {
	return fmt.Sprintf("%s.pools[%d]", n.Src, slices.Index(n.Pools, pool))
}

func (l *linter) poolSizes() {
	for _, pool := range l.t.Pools() {
		nodes := l.t.PoolNodes(pool)
		at := poolPath(nodes[0], pool)
		if l.seed.Pool(pool) == nil {
			l.add(RuleUnknownPool, Warning, at, "pool %s is not in the seed's node pool table; its sizes cannot be checked", pool)
		}
		switch {
		case len(nodes) < 3:
			l.add(RulePoolSize, Error, at, "pool %s has %d node(s); the seed asks for three or more hosts per pool", pool, len(nodes))
		case len(nodes)%2 == 0:
			l.add(RulePoolEven, Warning, at, "pool %s has %d nodes, an even count; grow pools in steps of two to keep an odd number", pool, len(nodes))
		}
	}
}

func (l *linter) nodeSizes() {
	for _, n := range l.t.Nodes {
		for _, name := range n.Pools {
			p := l.seed.Pool(name)
			if p == nil {
				continue
			}
			var short []string
			min := p.Initial
			if n.HasCPU && n.CPU < min.CPU {
				short = append(short, fmt.Sprintf("%g cores < %g", n.CPU, min.CPU))
			}
			if n.HasMemory && n.Memory < min.MemoryBytes() {
				short = append(short, fmt.Sprintf("memory %s < %s", human(n.Memory), min.Memory))
			}
			if n.HasDisk && n.Disk < min.DiskBytes() {
				short = append(short, fmt.Sprintf("disk %s < %s", human(n.Disk), min.Disk))
			}
			if len(short) > 0 {
				l.add(RuleNodeSize, Warning, n.Src, "node %s is below the seed's Initial size for pool %s: %s", n.Name, name, strings.Join(short, ", "))
			}
		}
	}
}

func human(b int64) string {
	const gi = 1 << 30
	if b%gi == 0 {
		return fmt.Sprintf("%dGi", b/gi)
	}
	return fmt.Sprintf("%.1fGB", float64(b)/1e9)
}

func (l *linter) merges() {
	for _, n := range l.t.Nodes {
		if len(n.Pools) < 2 {
			continue
		}
		var never []string
		for _, p := range n.Pools {
			if l.seed.IsNeverMerge(p) {
				never = append(never, p)
			}
		}
		path := n.Src + ".pools"
		switch {
		case len(never) > 0:
			l.add(RulePoolMerge, Error, path, "node %s merges %s with other pools (%s); the seed says these business-critical pools must never be merged",
				n.Name, strings.Join(never, ", "), strings.Join(n.Pools, ", "))
		case l.seed.CombinedHolding(n.Pools) == nil:
			l.add(RulePoolMergeUntried, Warning, path, "node %s combines pools %s, which is none of the seed's Combined Pools 1-4 (an untested combination)",
				n.Name, strings.Join(n.Pools, ", "))
		}
		for _, c := range l.seed.NeverMergeWhenUsed {
			if slices.Contains(n.Pools, c.Pool) {
				l.add(RulePoolMergeFeature, Info, path, "node %s merges %s with other pools: keep it separate if %s are used frequently", n.Name, c.Pool, c.Feature)
			}
		}
	}
}

// quorumLike kinds need at least three members per the seed.
func quorumLike(sv *topology.Service) bool {
	switch sv.Kind {
	case scenarios.KindEtcd, scenarios.KindZookeeper, scenarios.KindRaft, scenarios.KindMySQL, scenarios.KindMongoDB, scenarios.KindRedis:
		return true
	}
	return false
}

func (l *linter) replicas(sv *topology.Service) {
	if !quorumLike(sv) {
		return
	}
	n := sv.Replicas()
	at := sv.Src + ".replicas"
	switch {
	case n < 3:
		l.add(RuleQuorumReplicas, Error, at, "%s service %s has %d member(s); it needs at least three to survive the loss of one", sv.Kind, sv.Name, n)
	case n%2 == 0 && (sv.Quorum || sv.Kind == scenarios.KindRedis):
		l.add(RuleQuorumEven, Warning, at, "%s service %s has %d members: an even count tolerates no more failures than %d and has more members to fail", sv.Kind, sv.Name, n, n-1)
	}
}

func (l *linter) kafka(sv *topology.Service) {
	if sv.Kind != scenarios.KindKafka {
		return
	}
	if sv.ReplicationFactor < 3 {
		l.add(RuleKafkaRF, Error, sv.Src+".replicationFactor", "kafka service %s has replicationFactor %d; the seed asks for 3", sv.Name, sv.ReplicationFactor)
	}
	switch {
	case sv.MinInSync < 2:
		l.add(RuleKafkaMinISR, Error, sv.Src+".minInSync", "kafka service %s has minInSync %d: an acknowledged write may live on one broker only", sv.Name, sv.MinInSync)
	case sv.MinInSync >= sv.ReplicationFactor:
		l.add(RuleKafkaMinISR, Error, sv.Src+".minInSync", "kafka service %s has minInSync %d with replicationFactor %d: losing one replica stops writes", sv.Name, sv.MinInSync, sv.ReplicationFactor)
	}
}

// antiAffinity flags members that share a rack, feed or switch while an
// eligible node sharing none of the members' racks (feeds, switches) was free.
func (l *linter) antiAffinity(sv *topology.Service) {
	dims := []struct {
		rule, what string
		units      func(*topology.Node) []string
	}{
		{RuleSharedRack, "rack", func(n *topology.Node) []string { return []string{n.Rack.Path()} }},
		{RuleSharedFeed, "power feed", func(n *topology.Node) []string {
			var out []string
			for _, f := range n.Rack.Feeds {
				out = append(out, f.Name)
			}
			return out
		}},
		{RuleSharedSwitch, "switch", func(n *topology.Node) []string {
			var out []string
			for _, s := range n.Rack.Switches {
				out = append(out, s.Name)
			}
			return out
		}},
	}
	isMember := map[*topology.Node]bool{}
	for _, m := range sv.Members {
		isMember[m] = true
	}
	for _, d := range dims {
		users := map[string][]int{} // unit -> member indexes
		var order []string
		for i, m := range sv.Members {
			for _, u := range d.units(m) {
				if _, ok := users[u]; !ok {
					order = append(order, u)
				}
				users[u] = append(users[u], i)
			}
		}
		var shared []string
		for _, u := range order {
			if len(users[u]) > 1 {
				shared = append(shared, fmt.Sprintf("%s (members %s)", u, ints(users[u])))
			}
		}
		if len(shared) == 0 {
			continue
		}
		var alt *topology.Node
		for _, n := range l.t.PoolNodes(sv.Spec.Pool) {
			if isMember[n] {
				continue
			}
			free := true
			for _, u := range d.units(n) {
				if _, used := users[u]; used {
					free = false
					break
				}
			}
			if free {
				alt = n
				break
			}
		}
		if alt == nil {
			continue
		}
		l.add(d.rule, Warning, sv.Src, "service %s: members share %s %s although node %s, which shares none, carries pool %s",
			sv.Name, d.what, strings.Join(shared, ", "), alt.Name, sv.Spec.Pool)
	}
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func (l *linter) siteMajority(sv *topology.Service) {
	if !sv.Quorum {
		return
	}
	count := map[*topology.Site]int{}
	for _, m := range sv.Members {
		count[m.Site()]++
	}
	for _, site := range l.t.Sites {
		if c := count[site]; c > 0 && 2*(sv.Replicas()-c) <= sv.Replicas() {
			l.add(RuleSiteMajority, Warning, sv.Src, "site %s holds %d of the %d members of %s service %s: losing that site loses quorum",
				site.Name, c, sv.Replicas(), sv.Kind, sv.Name)
		}
	}
}

// siteLoss warns when losing a whole site makes a kafka or redis service
// read-only or down. The verdict is analyze's own for the site's power-off
// (spec section 5): kafka needs minInSync replicas of every partition in
// the serving component and, to move leaders, its controller's majority;
// redis fails over only with a Sentinel majority. Quorum kinds have the
// member count check above.
func (l *linter) siteLoss(sv *topology.Service) {
	if sv.Kind != scenarios.KindKafka && sv.Kind != scenarios.KindRedis {
		return
	}
	for _, site := range l.t.Sites {
		off := topology.Fault{Action: scenarios.ActionPowerOff, Target: scenarios.Target{Kind: scenarios.TargetSite, Name: site.Name}}
		_ = l.st.Apply(off) // the site exists: Apply cannot fail
		v := l.st.Judge(sv).Verdict
		_ = l.st.Revert(off)
		if v < topology.ReadOnly {
			continue
		}
		why := redisSiteLoss(sv, site)
		if sv.Kind == scenarios.KindKafka {
			why = kafkaSiteLoss(sv, site, v)
		}
		if why == "" {
			// Only the network model explains it: the site carried the
			// others' traffic.
			why = "the other sites cannot all reach each other without it"
		}
		there := 0
		for _, m := range sv.Members {
			if m.Site() == site {
				there++
			}
		}
		l.add(RuleSiteMajority, Warning, sv.Src, "site %s holds %d of the %d members of %s service %s: losing that site makes it %s (%s)",
			site.Name, there, sv.Replicas(), sv.Kind, sv.Name, v, why)
	}
}

// kafkaSiteLoss explains why losing a site makes kafka read-only or down
// (v), the other sites assumed to reach each other.
func kafkaSiteLoss(sv *topology.Service, site *topology.Site, v topology.Verdict) string {
	there := func(m int) bool { return sv.Members[m].Site() == site }
	var gone, short, led, waits []int
	for p, reps := range sv.Partitions {
		left := 0
		for _, m := range reps {
			if !there(m) {
				left++
			}
		}
		switch {
		case left == 0:
			gone = append(gone, p)
		case left < sv.MinInSync:
			short = append(short, p)
		}
		switch {
		case there(reps[0]):
			led = append(led, p)
		case left < len(reps):
			waits = append(waits, p)
		}
	}
	ctl := 0
	for _, n := range sv.Controller {
		if n.Site() != site {
			ctl++
		}
	}
	what := "KRaft controllers keep"
	if sv.ControllerService != nil {
		what = "ZooKeeper service " + sv.ControllerService.Name + " keeps"
	}
	noCtl := fmt.Sprintf("its %s %d of %d members elsewhere, no majority to move leaders", what, ctl, len(sv.Controller))
	lost := 2*ctl <= len(sv.Controller)
	switch {
	case v == topology.Down && len(gone) > 0:
		return partitions(gone, "has", "have") + " every replica there"
	case v == topology.Down && lost && len(led) > 0:
		return partitions(led, "is", "are") + " led from there and " + noCtl
	case len(short) > 0:
		return fmt.Sprintf("%s fewer than minInSync %d replicas elsewhere", partitions(short, "keeps", "keep"), sv.MinInSync)
	case lost && len(waits) > 0:
		return partitions(waits, "has", "have") + " a follower there that acks=all writes wait on, and " + noCtl + " or shrink in-sync replica sets"
	}
	return ""
}

// redisSiteLoss explains why losing a site makes redis down.
func redisSiteLoss(sv *topology.Service, site *topology.Site) string {
	if sv.Members[0].Site() != site {
		return ""
	}
	left := 0
	for _, m := range sv.Members {
		if m.Site() != site {
			left++
		}
	}
	return fmt.Sprintf("the primary, member 0, is there and the other sites hold %d of the %d members: no Sentinel majority to fail over", left, len(sv.Members))
}

// partitions names partitions with the verb agreeing: the first few and
// how many more.
func partitions(ps []int, one, many string) string {
	const shown = 5
	if len(ps) == 1 {
		return fmt.Sprintf("partition %d %s", ps[0], one)
	}
	s := "partitions " + ints(ps[:min(len(ps), shown)])
	if len(ps) > shown {
		s += fmt.Sprintf(" and %d more", len(ps)-shown)
	}
	return s + " " + many
}
