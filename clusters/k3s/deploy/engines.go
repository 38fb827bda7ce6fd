package deploy

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
	"github.com/chaosloop/chaosloop/topology"
)

// engineKind is what deploy mode knows of an engine it runs.
type engineKind struct {
	// image names the engine's image (the images builder's engine name).
	image string
	// ports a member listens on, before the port offset.
	ports []uint16
	// processes name member m's long-running processes: its pods.
	processes func(m engines.Member) []string
	budget    func() engines.Budget
	// make makes the engine of sv; zooKeeper is a Kafka's connect string
	// in ZooKeeper mode, "" otherwise.
	make func(log *slog.Logger, sv *topology.Service, zooKeeper string) Engine
}

// kinds are the engines deploy mode runs, by the local lab's engine
// names. The others still read or write their members' files on
// chaosloop's own machine, or run helpers there.
var kinds = map[string]engineKind{
	local.EngineEtcd: {image: "etcd", ports: []uint16{etcd.ClientPort, etcd.PeerPort}, processes: one(etcd.ProcessName),
		budget: etcd.FailoverBudget,
		make:   func(log *slog.Logger, _ *topology.Service, _ string) Engine { return etcd.New(log) }},
	// KRaft; kindOf makes it a ZooKeeper-mode Kafka's
	local.EngineKafka: {image: "kafka", ports: []uint16{kafka.ClientPort, kafka.ControllerPort}, processes: one(kafka.ProcessName),
		budget: func() engines.Budget { return kafka.FailoverBudget(false) },
		make: func(log *slog.Logger, sv *topology.Service, zooKeeper string) Engine {
			o := local.KafkaOptions(sv)
			o.ZooKeeper = zooKeeper
			o.Prebuilt = true // the jars are in the engine's image, at the cache's paths
			return local.NewKafkaEngine(kafka.New(log, ""), o)
		}},
	local.EngineZooKeeper: {image: "zookeeper", ports: []uint16{zookeeper.ClientPort, zookeeper.PeerPort, zookeeper.ElectionPort},
		processes: one(zookeeper.ProcessName), budget: zookeeper.FailoverBudget,
		make: func(log *slog.Logger, _ *topology.Service, _ string) Engine { return zookeeper.New(log) }},
	local.EngineGalera: {image: "mariadb", ports: []uint16{galera.ClientPort, galera.GroupPort, galera.ISTPort, galera.SSTPort},
		processes: one(mariadb.ProcName), budget: galera.FailoverBudget,
		make: func(log *slog.Logger, _ *topology.Service, _ string) Engine { return galera.New(log) }},
	local.EngineDocstore: {image: "docstore", processes: docstore.ProcessNames, budget: docstore.FailoverBudget,
		ports: []uint16{docstore.EtcdClientPort, docstore.EtcdPeerPort, docstore.PostgresPort, docstore.PatroniPort,
			docstore.FerretDBPort, docstore.FerretDBDebugPort},
		// FerretDB is in the engine's image at the default cache's path
		make: func(log *slog.Logger, _ *topology.Service, _ string) Engine {
			return docstore.New(log, local.DefaultCache)
		}},
	local.EngineRedis: {image: "redis", ports: []uint16{redis.Port, redis.SentinelPort}, processes: redis.ProcessNames,
		budget: redis.FailoverBudget,
		make:   func(log *slog.Logger, _ *topology.Service, _ string) Engine { return redis.New(log) }},
}

// one is a member's only process.
func one(name func(engines.Member) string) func(engines.Member) []string {
	return func(m engines.Member) []string { return []string{name(m)} }
}

const deployableKinds = "chaosloop deploys only etcd (and Raft), ZooKeeper, Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet"

// kindOf is sv's engine in deploy mode, or why chaosloop cannot deploy
// it on a cluster yet. A stateless service is the load's, which deploy
// mode does not drive yet. (A scenario places one member of a service
// per node, so members never share their node's ports.)
func kindOf(sv *topology.Service) (engineKind, error) {
	name := local.EngineOf(sv.Spec)
	k, ok := kinds[name]
	switch {
	case !ok && name == local.EngineMariaDB:
		return k, fmt.Errorf("%s, not a mysql service with replication: %s", deployableKinds, sv.Spec.Replication)
	case !ok:
		return k, fmt.Errorf("%s, not a %s service", deployableKinds, sv.Kind)
	case name == local.EngineKafka && sv.ControllerService != nil:
		return onZooKeeper(k, sv.ControllerService)
	}
	return k, nil
}

// onZooKeeper is Kafka's kind in ZooKeeper mode, on the ensemble zk,
// which chaosloop must deploy too: it knows where that one listens.
func onZooKeeper(k engineKind, zk *topology.Service) (engineKind, error) {
	if zk.Spec.Attach != nil {
		return k, fmt.Errorf("chaosloop deploys Kafka in ZooKeeper mode only on a ZooKeeper it deploys too, not on the attached %s", zk.Name)
	}
	k.ports = []uint16{kafka.ClientPort} // no controller's: ZooKeeper's
	k.budget = func() engines.Budget { return kafka.FailoverBudget(true) }
	return k, nil
}

// Deployable says why chaosloop cannot deploy sv on a cluster yet, or
// nil.
func Deployable(sv *topology.Service) error {
	_, err := kindOf(sv)
	return err
}

// ImageOf is the name of the engine image (images.Engine's Name) a
// deployed sv runs, or why chaosloop cannot deploy sv.
func ImageOf(sv *topology.Service) (string, error) {
	k, err := kindOf(sv)
	return k.image, err
}

// FailoverBudget is the failover budget of a deployed service's engine,
// as chaosloop runs it; ok is false for a service it does not deploy.
func FailoverBudget(sv *topology.Service) (engines.Budget, bool) {
	k, err := kindOf(sv)
	if err != nil {
		return engines.Budget{}, false
	}
	return k.budget(), true
}

// portList shows ports plus offset: "4379, 4380".
func portList(ports []uint16, offset int) string {
	var s []string
	for _, p := range ports {
		s = append(s, strconv.Itoa(int(p)+offset))
	}
	return strings.Join(s, ", ")
}
