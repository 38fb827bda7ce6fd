// Package kafka runs real Apache Kafka brokers as lab engines, built from
// the Maven Central jars (see Install): KRaft with 4.x by default, or
// ZooKeeper mode with 3.9.x when Options.ZooKeeper is set.
//
// Member i is node/broker id i+1 and listens on Member.Addr:9092 (clients
// and replication) and, when it is a controller, Member.Addr:9093 (each
// port plus the member's PortOffset).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

const (
	// ClientPort serves clients and inter-broker replication.
	ClientPort = 9092
	// ControllerPort serves the KRaft controller quorum.
	ControllerPort = 9093
	// combinedMax is the largest cluster where every member is also a
	// KRaft controller; above it the first controllerCount are.
	combinedMax     = 5
	controllerCount = 3
)

// Engine runs Kafka clusters from jars cached under one directory.
type Engine struct {
	log      *slog.Logger
	cacheDir string

	mu      sync.Mutex
	version string // last installed or started
}

// Options describe one Kafka cluster. Zero values take defaults (see
// withDefaults).
type Options struct {
	// Version of kafka_2.13; "" = DefaultVersion, or DefaultZooKeeperVersion
	// in ZooKeeper mode.
	Version string
	// ZooKeeper is a connect string (with a chroot, if the ensemble is
	// shared); "" runs KRaft.
	ZooKeeper string
	// Racks gives broker.rack per member ("" or missing = none).
	Racks []string
	// ReplicationFactor (default min(3, members)), MinInSync (default
	// min(2, RF)) and Partitions (default 3) apply to Topics and to the
	// broker defaults.
	ReplicationFactor, MinInSync, Partitions int
	// Topics are created by Start.
	Topics []string
	// Assignment, when set, gives each partition's replicas as member
	// indexes (the scenario spec's assignment, so that the lab matches what
	// analyze predicts); otherwise Kafka assigns them (rack-aware).
	Assignment [][]int
	// HeapMB caps each broker's heap (default 256): the whole lab shares a
	// 2-core machine.
	HeapMB int
	// Prebuilt says the jars are where the members run already (the
	// engine's image on a real cluster), at the engine's cache paths:
	// nothing is installed on this machine.
	Prebuilt bool
}

// install installs o's version in the cache unless o.Prebuilt.
func (e *Engine) install(ctx context.Context, o Options) error {
	if o.Prebuilt {
		return nil
	}
	return e.Install(ctx, o.Version)
}

func (o Options) withDefaults(members int) Options {
	if o.Version == "" {
		o.Version = DefaultVersion
		if o.ZooKeeper != "" {
			o.Version = DefaultZooKeeperVersion
		}
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = min(3, members)
	}
	if o.MinInSync <= 0 {
		o.MinInSync = min(2, o.ReplicationFactor)
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.HeapMB <= 0 {
		o.HeapMB = 256
	}
	return o
}

// New returns an engine whose jars live under cacheDir ("" = DefaultCacheDir()).
func New(log *slog.Logger, cacheDir string) *Engine {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	return &Engine{log: log, cacheDir: cacheDir}
}

func (e *Engine) setVersion(v string) {
	e.mu.Lock()
	e.version = v
	e.mu.Unlock()
}

// Version is the Kafka version this engine last installed or started
// (checked to be present in the cache).
func (e *Engine) Version(ctx context.Context) (string, error) {
	e.mu.Lock()
	v := e.version
	e.mu.Unlock()
	if v == "" {
		return "", errors.New("kafka: no version installed yet")
	}
	if !e.installed(v) {
		return "", fmt.Errorf("kafka %s: not installed in %s", v, e.cacheDir)
	}
	return v, nil
}

// NodeID is member i's broker.id / node.id.
func NodeID(i int) int32 { return int32(i + 1) }

func procName(m engines.Member) string { return m.Name + ".kafka" }

// ProcessName names member m's broker process (its pod on a cluster).
func ProcessName(m engines.Member) string { return procName(m) }

func endpoint(m engines.Member) string { return m.AddrPort(ClientPort).String() }

// Endpoints are the bootstrap addresses of every member.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = endpoint(m)
	}
	return out
}

// client is a franz-go client over the given members (nil = all) with short
// timeouts, so a frozen or cut-off broker delays callers by seconds at most.
func (e *Engine) client(c *engines.Cluster, members []engines.Member, extra ...kgo.Opt) (*kgo.Client, error) {
	if members == nil {
		members = c.Members
	}
	seeds := make([]string, len(members))
	for i, m := range members {
		seeds[i] = endpoint(m)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(time.Second),
		kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.RetryTimeout(3 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
		// The lab reaches brokers from inside their host namespaces.
		kgo.Dialer(c.Dialer()),
	}, extra...)
	return kgo.NewClient(opts...)
}

// createAssigned creates the topics with an explicit replica assignment.
func createAssigned(ctx context.Context, cl *kgo.Client, o Options, minISR string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 20000
	for _, name := range o.Topics {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = name
		t.NumPartitions, t.ReplicationFactor = -1, -1
		for p, members := range o.Assignment {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition = int32(p)
			for _, m := range members {
				a.Replicas = append(a.Replicas, NodeID(m))
			}
			t.ReplicaAssignment = append(t.ReplicaAssignment, a)
		}
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = "min.insync.replicas", &minISR
		t.Configs = append(t.Configs, c)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// Failure detection timing. KRaft: a broker silent for BrokerSession is
// fenced; a controller voter that hears nothing from the active
// controller for QuorumFetchTimeout starts an election, which takes up to
// QuorumElectionTimeout (both Kafka's defaults, made explicit). ZooKeeper
// mode: a broker is gone when its ZKSession expires.
const (
	BrokerHeartbeat       = time.Second
	BrokerSession         = 4 * time.Second
	QuorumFetchTimeout    = 2 * time.Second
	QuorumElectionTimeout = time.Second
	ZKSession             = 6 * time.Second
)

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// FailoverBudget: KRaft, a broker fenced and the active controller
// replaced (worst case both); with ZooKeeper, the session expiring and
// the controller moving leadership; plus margin.
func FailoverBudget(zooKeeper bool) engines.Budget {
	if zooKeeper {
		return engines.WithMargin(ZKSession, fmt.Sprintf("zookeeper.session.timeout %s", ZKSession))
	}
	raw := BrokerSession + QuorumFetchTimeout + QuorumElectionTimeout
	return engines.WithMargin(raw, fmt.Sprintf("KRaft broker.session.timeout %s + controller.quorum.fetch.timeout %s + election.timeout %s = %s",
		BrokerSession, QuorumFetchTimeout, QuorumElectionTimeout, raw))
}
