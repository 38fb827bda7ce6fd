// Package scenarios decodes, defaults and validates chaosloop scenario files
// (docs/scenario.md). Decoding is strict and reports every problem at
// once with file:line:column; defaults are applied by a separate step, and
// validation never mutates the scenario.
package scenarios

// Scenario is one scenario file. Field names follow the spec exactly.
type Scenario struct {
	Name        string    `yaml:"name" json:"name"`
	Description string    `yaml:"description,omitempty" json:"description,omitempty"`
	Sites       []Site    `yaml:"sites" json:"sites"`
	Links       []Link    `yaml:"links,omitempty" json:"links,omitempty"`
	Services    []Service `yaml:"services,omitempty" json:"services,omitempty"`
	Load        *Load     `yaml:"load,omitempty" json:"load,omitempty"`
	Faults      []Fault   `yaml:"faults,omitempty" json:"faults,omitempty"`
	Expect      *Expect   `yaml:"expect,omitempty" json:"expect,omitempty"`

	// File is the path the scenario was read from ("" for in-memory input).
	File string `yaml:"-" json:"-"`
	// pos maps a field path (see Path) to where it was written.
	pos map[string]Pos
	// failed holds the paths whose values failed to decode (see failedAt).
	failed map[string]bool
}

// Site is a data centre.
type Site struct {
	Name  string `yaml:"name" json:"name"`
	Racks []Rack `yaml:"racks" json:"racks"`
}

// Rack is a set of nodes sharing power feeds and top-of-rack switches.
type Rack struct {
	Name     string   `yaml:"name" json:"name"`
	Power    []string `yaml:"power" json:"power"`
	Switches []string `yaml:"switches" json:"switches"`
	Nodes    []Node   `yaml:"nodes,omitempty" json:"nodes,omitempty"`
}

// Node is one physical machine.
type Node struct {
	Name   string    `yaml:"name" json:"name"`
	Pools  []string  `yaml:"pools,omitempty" json:"pools,omitempty"`
	CPU    *float64  `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory *Quantity `yaml:"memory,omitempty" json:"memory,omitempty"`
	Disk   *Quantity `yaml:"disk,omitempty" json:"disk,omitempty"`
}

// Link is a WAN link between two sites.
type Link struct {
	Between []string  `yaml:"between" json:"between"`
	Latency *Duration `yaml:"latency,omitempty" json:"latency,omitempty"`
}

// Service kinds.
const (
	KindEtcd      = "etcd"
	KindZookeeper = "zookeeper"
	KindRaft      = "raft"
	KindKafka     = "kafka"
	KindMySQL     = "mysql"
	KindMongoDB   = "mongodb"
	KindRedis     = "redis"
	KindStateless = "stateless"
)

// Kinds lists every service kind in the spec's order.
var Kinds = []string{KindEtcd, KindZookeeper, KindRaft, KindKafka, KindMySQL, KindMongoDB, KindRedis, KindStateless}

// MySQL replication modes.
const (
	ReplicationGroup = "group"
	ReplicationAsync = "async"
)

// Spread levels.
const (
	SpreadSite = "site"
	SpreadRack = "rack"
	SpreadNode = "node"
)

// Service is a replicated (or stateless) service placed on a node pool.
type Service struct {
	Name              string   `yaml:"name" json:"name"`
	Kind              string   `yaml:"kind" json:"kind"`
	Replication       string   `yaml:"replication,omitempty" json:"replication,omitempty"`
	Replicas          *int     `yaml:"replicas,omitempty" json:"replicas,omitempty"`
	Pool              string   `yaml:"pool" json:"pool"`
	Spread            string   `yaml:"spread,omitempty" json:"spread,omitempty"`
	ReplicationFactor *int     `yaml:"replicationFactor,omitempty" json:"replicationFactor,omitempty"`
	MinInSync         *int     `yaml:"minInSync,omitempty" json:"minInSync,omitempty"`
	Partitions        *int     `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	Placement         []string `yaml:"placement,omitempty" json:"placement,omitempty"`
	// Controller names the zookeeper service a kafka service uses for metadata
	// (ZooKeeper mode); without it kafka runs KRaft, unless the scenario has
	// exactly one zookeeper service (the seed's v15 layout). An extension.
	Controller string `yaml:"controller,omitempty" json:"controller,omitempty"`
	// Attach names the adopter's own pods of the service on a real cluster
	// (--on k3s), which chaosloop observes instead of deploying its own.
	// An extension.
	Attach *Attach `yaml:"attach,omitempty" json:"attach,omitempty"`
}

// Attach finds a service's pods on a real cluster: those in Namespace
// matching Selector, member i being the i-th by name (a StatefulSet's
// ordinal order).
type Attach struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	Selector  string `yaml:"selector" json:"selector"`
}

// Load is the offered transfer workload.
type Load struct {
	Rate         *float64  `yaml:"rate,omitempty" json:"rate,omitempty"`
	Duration     *Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	Warmup       *Duration `yaml:"warmup,omitempty" json:"warmup,omitempty"`
	Participants *int      `yaml:"participants,omitempty" json:"participants,omitempty"`
}

// Fault actions.
const (
	ActionPowerOff = "power-off"
	ActionIsolate  = "isolate"
	ActionKill     = "kill"
	ActionPause    = "pause"
	ActionLatency  = "latency"
	ActionDestroy  = "destroy"
)

// Actions lists every fault action in the spec's order.
var Actions = []string{ActionPowerOff, ActionIsolate, ActionKill, ActionPause, ActionLatency, ActionDestroy}

// Fault is one scheduled fault.
type Fault struct {
	At     *Duration `yaml:"at" json:"at"`
	For    *Duration `yaml:"for,omitempty" json:"for,omitempty"`
	Action string    `yaml:"action" json:"action"`
	Target string    `yaml:"target" json:"target"`
	// Delay, Jitter and Loss parameterise latency faults.
	Delay  *Duration `yaml:"delay,omitempty" json:"delay,omitempty"`
	Jitter *Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	Loss   *float64  `yaml:"loss,omitempty" json:"loss,omitempty"`
}

// Expect holds the run's scoring thresholds.
type Expect struct {
	Quorum           string    `yaml:"quorum,omitempty" json:"quorum,omitempty"`
	AcknowledgedLoss *int      `yaml:"acknowledgedLoss,omitempty" json:"acknowledgedLoss,omitempty"`
	Throughput       *float64  `yaml:"throughput,omitempty" json:"throughput,omitempty"`
	Recovery         *Duration `yaml:"recovery,omitempty" json:"recovery,omitempty"`
	// Failover is optional and has no default here: see FailoverFor.
	Failover *Failover `yaml:"failover,omitempty" json:"failover,omitempty"`
}
