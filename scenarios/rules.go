package scenarios

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rule is what one field of a scenario file may hold. The table below is the
// one source of the field rules: Validate checks every field against it, the
// JSON Schema (JSONSchema) is generated from it, and so is the field table of
// docs/scenario.md (FieldReference). Cross-field rules (references, duplicate
// names, placement) stay in validate.go; the schema cannot express them.
type Rule struct {
	// Path names the field: "services[].partitions", "[]" standing for
	// every element of a list.
	Path string
	// Doc says what the field means, in the spec's words (editors show it
	// on hover).
	Doc string
	// Default is the value an omitted field takes, as documentation.
	Default string
	// Required fields must be written (a list: with MinItems entries).
	Required bool
	// Noun names one value in messages: "site" ("site name \"x\" ...",
	// "at least one site is required").
	Noun string
	// Format constrains strings (and the strings of a list).
	Format Format
	// Enum lists the allowed strings.
	Enum []string
	// Min and Max bound numbers, durations (in nanoseconds) and sizes (in
	// bytes); Exclusive makes Min itself invalid. Every number has both.
	Min, Max  float64
	Exclusive bool
	// MinItems and MaxItems bound a list's length (0: no bound); Unique
	// forbids an entry twice.
	MinItems, MaxItems int
	Unique             bool
	// Only restricts the field to objects whose sibling field holds one of
	// some values ("partitions applies to kafka services only").
	Only *Cond
	// NeededWhen requires the field (or one of Or) when the condition holds.
	NeededWhen *Cond
	Or         []string
	// Hint follows a lower-bound or uniqueness message.
	Hint string
}

// Format is a string shape.
type Format int

const (
	FormatNone   Format = iota
	FormatLabel         // a DNS-1123 label
	FormatPool          // a DNS-1123 label in upper case
	FormatTarget        // a target path (section 2 of the spec)
	// FormatSelector is an equality-based Kubernetes label selector:
	// key=value pairs separated by commas.
	FormatSelector
)

// Cond holds when a sibling field has one of Values; Says names the objects
// it selects in messages ("kafka services").
type Cond struct {
	Field  string
	Values []string
	Says   string
}

// Upper bounds: no real deployment comes near them, and each keeps what
// chaosloop allocates or schedules from a file small. They are documented in
// docs/scenario.md.
const (
	// MaxReplicas: members go one per node; a Kafka cluster of a thousand
	// brokers is far beyond any payment switch.
	MaxReplicas = 1000
	// MaxPartitions: Kafka advises at most 4,000 partitions per broker;
	// the analysis walks every partition under every failure.
	MaxPartitions = 10_000
	// MaxRate transfers per second: national instant-payment schemes peak
	// in the tens of thousands.
	MaxRate = 1_000_000
	// MaxParticipants: DFSPs of one scheme (the largest have hundreds).
	MaxParticipants = 10_000
	// MaxAcknowledgedLoss transfers: more than a month at any sane rate.
	MaxAcknowledgedLoss = 1_000_000_000
	// MaxCPU cores of one node (the largest single-image servers have under
	// 2,000 threads).
	MaxCPU = 4096
	// MaxMemory of one node: 64 TiB (the largest servers hold 48 TB).
	MaxMemory = 64 << 40
	// MaxDisk of one node: 1 PiB.
	MaxDisk = 1 << 50
	// MaxSchedule bounds load durations, fault offsets and lengths and the
	// run's budgets: a soak of 30 days.
	MaxSchedule = 30 * 24 * time.Hour
	// MaxDelay bounds link latency and injected delay or jitter: a
	// geostationary satellite hop is 0.6 s.
	MaxDelay = time.Minute
)

// Conditions of the rules below.
var (
	kafkaOnly   = &Cond{Field: "kind", Values: []string{KindKafka}, Says: "kafka services"}
	mysqlOnly   = &Cond{Field: "kind", Values: []string{KindMySQL}, Says: "mysql services"}
	latencyOnly = &Cond{Field: "action", Values: []string{ActionLatency}, Says: "latency faults"}
)

// rules is the table. Every field of every type in types.go has a row (a
// test checks it), in the types' field order.
var rules = func() []Rule {
	const sMin, sMax = 0, float64(MaxSchedule)
	return []Rule{
		{Path: "name", Required: true, Noun: "scenario", Format: FormatLabel,
			Doc: "The scenario's name: a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)."},
		{Path: "description", Doc: "Free text describing the deployment."},
		{Path: "sites", Required: true, Noun: "site", MinItems: 1,
			Doc: "The data centres (at least one)."},
		{Path: "sites[].name", Required: true, Noun: "site", Format: FormatLabel, Doc: "The site's name, unique in the scenario."},
		{Path: "sites[].racks", Required: true, Noun: "rack", MinItems: 1,
			Doc: "The site's racks (at least one): nodes sharing power feeds and top-of-rack switches."},
		{Path: "sites[].racks[].name", Required: true, Noun: "rack", Format: FormatLabel, Doc: "The rack's name, unique in its site."},
		{Path: "sites[].racks[].power", Required: true, Noun: "power feed", Format: FormatLabel, MinItems: 1, Unique: true,
			Doc: "The rack's power feeds (at least one). Names are global; a feed may serve several racks of one site. A node goes down only when every feed of its rack is off."},
		{Path: "sites[].racks[].switches", Required: true, Noun: "switch", Format: FormatLabel, MinItems: 1, Unique: true,
			Doc: "The rack's top-of-rack switches (at least one). Names are global; a switch may serve several racks of one site. A rack is cut off when every one of its switches is isolated."},
		{Path: "sites[].racks[].nodes", Noun: "node", Doc: "The rack's machines."},
		{Path: "sites[].racks[].nodes[].name", Required: true, Noun: "node", Format: FormatLabel, Doc: "The node's name, unique in the scenario."},
		{Path: "sites[].racks[].nodes[].pools", Noun: "pool", Format: FormatPool, Unique: true,
			Doc: "The node pools this node carries (the seed's node pool table, e.g. KAFKA-DATA-PLANE, or others of the same shape): services are placed only on nodes carrying their pool."},
		{Path: "sites[].racks[].nodes[].cpu", Noun: "cpu", Min: 0, Max: MaxCPU,
			Doc: "Cores, checked against the seed's Initial size for the node's pools."},
		{Path: "sites[].racks[].nodes[].memory", Noun: "memory", Min: 0, Max: MaxMemory,
			Doc: "Memory, a Kubernetes quantity in whole bytes such as 32Gi or 500G (not 500m: m means milli)."},
		{Path: "sites[].racks[].nodes[].disk", Noun: "disk", Min: 0, Max: MaxDisk,
			Doc: "Disk, a Kubernetes quantity in whole bytes such as 500Gi or 1T."},
		{Path: "links", Noun: "link", Default: "a full mesh at 1ms",
			Doc: "WAN links between sites. Traffic may transit a third site."},
		{Path: "links[].between", Required: true, Noun: "site", Format: FormatLabel, MinItems: 2, MaxItems: 2, Unique: true,
			Hint: "a link joins two different sites", Doc: "The two sites the link joins."},
		{Path: "links[].latency", Noun: "latency", Min: 0, Max: float64(MaxDelay), Default: DefaultLinkLatency.String(),
			Doc: "One-way latency of the link, a Go duration."},
		{Path: "services", Noun: "service", Doc: "The replicated (or stateless) services placed on the nodes."},
		{Path: "services[].name", Required: true, Noun: "service", Format: FormatLabel, Doc: "The service's name, unique in the scenario."},
		{Path: "services[].kind", Required: true, Noun: "kind", Enum: Kinds,
			Doc: "The engine family, which decides how failures are judged: etcd, zookeeper and raft (any Raft service such as vault or consul), mongodb and group-replicated mysql need a strict majority; kafka needs minInSync replicas of every partition; async mysql and redis are a primary plus replicas; stateless needs one replica."},
		{Path: "services[].replication", Noun: "replication", Enum: []string{ReplicationGroup, ReplicationAsync}, Only: mysqlOnly, Default: ReplicationGroup,
			Doc: "mysql only: group (a quorum, like MySQL 8 group replication) or async (a primary plus replicas with no automatic failover, like MySQL 5.7)."},
		{Path: "services[].replicas", Noun: "replicas", Min: 1, Max: MaxReplicas, Default: "3, or the length of placement",
			Doc: "Number of members, one per node."},
		{Path: "services[].pool", Required: true, Noun: "pool", Format: FormatPool,
			Doc: "The node pool members are placed on: only nodes carrying it are eligible."},
		{Path: "services[].spread", Noun: "spread", Enum: []string{SpreadSite, SpreadRack, SpreadNode}, Default: SpreadRack,
			Doc: "The level whose distinct units placement maximises: site, rack or node."},
		{Path: "services[].replicationFactor", Noun: "replicationFactor", Min: 1, Max: MaxReplicas, Only: kafkaOnly,
			Default: fmt.Sprintf("min(%d, replicas)", DefaultMaxRF),
			Doc:     "kafka only: replicas of each partition, at most the number of brokers (replicas)."},
		{Path: "services[].minInSync", Noun: "minInSync", Min: 1, Max: MaxReplicas, Only: kafkaOnly, Default: strconv.Itoa(DefaultMinInSync),
			Doc: "kafka only: in-sync replicas an acks=all write needs; a partition with fewer in the serving component makes kafka read-only."},
		{Path: "services[].partitions", Noun: "partitions", Min: 1, Max: MaxPartitions, Only: kafkaOnly, Default: strconv.Itoa(DefaultPartitions),
			Doc: "kafka only: partitions, placed over brokers ordered by alternating racks."},
		{Path: "services[].placement", Noun: "node", Format: FormatLabel, Unique: true, Hint: "one member per node",
			Default: "automatic: each member to the spread unit holding the fewest",
			Doc:     "Explicit member nodes, member 0 first; overrides automatic placement. Each must carry the service's pool."},
		{Path: "services[].controller", Noun: "service", Format: FormatLabel, Only: kafkaOnly,
			Default: "the scenario's only zookeeper service, else KRaft",
			Doc:     "kafka only: the zookeeper service kafka keeps its metadata in (ZooKeeper mode). Required when the scenario has several zookeeper services; without one, kafka runs a KRaft controller quorum on its own brokers."},
		{Path: "services[].attach", Default: "chaosloop deploys the service (--on local, kind; --on k3s from --registry: etcd, ZooKeeper, Kafka (KRaft, or on a ZooKeeper deployed too), Redis, Galera and FerretDB on Patroni so far)",
			Doc: "--on k3s: the adopter's own pods of this service, which chaosloop observes (and whose placement it checks against the scenario's) instead of deploying its own. Member i is the pod of ordinal i when the pods are a StatefulSet's (NAME-0, NAME-1, ...), else the i-th by name."},
		{Path: "services[].attach.namespace", Required: true, Noun: "namespace", Format: FormatLabel, Doc: "The pods' namespace."},
		{Path: "services[].attach.selector", Required: true, Noun: "selector", Format: FormatSelector,
			Doc: "The pods' labels, as an equality-based Kubernetes label selector: key=value pairs separated by commas (app.kubernetes.io/name=kafka,app.kubernetes.io/instance=switch)."},
		{Path: "load", Doc: "The offered transfer workload: optional for analyze, required for run."},
		{Path: "load.rate", Noun: "load.rate", Min: 0, Exclusive: true, Max: MaxRate, Default: strconv.Itoa(DefaultRate),
			Doc: "Transfers per second offered (open loop)."},
		{Path: "load.duration", Noun: "load.duration", Min: sMin, Max: sMax, Exclusive: true, Default: fmtDuration(DefaultLoadDuration),
			Doc: "Measured time after warmup; fault offsets count from its start."},
		{Path: "load.warmup", Noun: "load.warmup", Min: sMin, Max: sMax, Default: fmtDuration(DefaultWarmup),
			Doc: "Load before measuring starts."},
		{Path: "load.participants", Noun: "load.participants", Min: 2, Max: MaxParticipants, Default: strconv.Itoa(DefaultParticipants),
			Hint: "transfers go between DFSPs", Doc: "Simulated DFSPs."},
		{Path: "faults", Noun: "fault", Doc: "The faults run injects, each at an offset from the end of warmup."},
		{Path: "faults[].at", Required: true, Noun: "at", Min: sMin, Max: sMax, Doc: "Offset from the end of warmup; before load.duration."},
		{Path: "faults[].for", Noun: "for", Min: sMin, Max: sMax, Exclusive: true, Default: "until the end",
			Hint: "omit it to keep the fault until the end", Doc: "How long the fault lasts; it is healed afterwards."},
		{Path: "faults[].action", Required: true, Noun: "action", Enum: Actions,
			Doc: "power-off (node, rack, site, feed), isolate (node, rack, site, switch, link), kill or pause (a service member), latency (link, node), destroy (node, rack, site: power-off and the disks are lost)."},
		{Path: "faults[].target", Required: true, Noun: "target", Format: FormatTarget,
			Doc: "A path: site/NAME, rack/SITE/NAME, node/NAME, feed/NAME, switch/NAME, link/SITE-A/SITE-B, service/NAME (optionally service/NAME/leader or service/NAME/INDEX)."},
		{Path: "faults[].delay", Noun: "delay", Min: 0, Max: float64(MaxDelay), Only: latencyOnly, NeededWhen: latencyOnly, Or: []string{"loss"},
			Doc: "latency only: delay added to the target's traffic."},
		{Path: "faults[].jitter", Noun: "jitter", Min: 0, Max: float64(MaxDelay), Only: latencyOnly,
			Doc: "latency only: variation of the delay (±)."},
		{Path: "faults[].loss", Noun: "loss", Min: 0, Max: 1, Only: latencyOnly,
			Doc: "latency only: probability that a packet is dropped, from 0 to 1."},
		{Path: "expect", Doc: "Scoring thresholds for run."},
		{Path: "expect.quorum", Noun: "expect.quorum", Enum: []string{"held", "any"}, Default: DefaultExpectQuorum,
			Doc: "held: a service observed read-only or down while a fault is active fails the run, whether analyze predicted it or not; any: reported, not scored."},
		{Path: "expect.acknowledgedLoss", Noun: "expect.acknowledgedLoss", Min: 0, Max: MaxAcknowledgedLoss, Default: "0",
			Doc: "Acknowledged transfers allowed to vanish."},
		{Path: "expect.throughput", Noun: "expect.throughput", Min: 0, Max: 1, Default: strconv.FormatFloat(DefaultExpectThrougput, 'g', -1, 64),
			Doc: "Minimum fraction of baseline throughput while faults are active."},
		{Path: "expect.recovery", Noun: "expect.recovery", Min: sMin, Max: sMax, Default: fmtDuration(DefaultExpectRecovery),
			Doc: "Maximum time after heal to return to 90% of baseline throughput."},
		{Path: "expect.failover", Noun: "expect.failover", Min: sMin, Max: sMax, Exclusive: true,
			Default: "derived from each engine's own timeouts",
			Doc:     "Maximum write outage per service after a fault: a duration for every service, or a map {service: duration}."},
	}
}()

// ruleIndex finds a rule by its path.
var ruleIndex = func() map[string]*Rule {
	m := make(map[string]*Rule, len(rules))
	for i := range rules {
		m[rules[i].Path] = &rules[i]
	}
	return m
}()

// Rules returns a copy of the field rules, in file order.
func Rules() []Rule { return append([]Rule(nil), rules...) }

// ruleFor returns the rule of a field path pattern; every field has one.
func ruleFor(rpath string) *Rule {
	r, ok := ruleIndex[rpath]
	if !ok {
		panic("scenarios: no rule for " + rpath)
	}
	return r
}

// field returns the last segment of a rule path ("partitions").
func (r *Rule) field() string {
	return r.Path[strings.LastIndex(r.Path, ".")+1:]
}

// holds reports whether c selects the object whose field values are given.
func (c *Cond) holds(value string) bool {
	return slices.Contains(c.Values, value)
}

// fmtDuration writes a duration without trailing zero units ("720h", "1m").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
