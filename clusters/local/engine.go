package local

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
	"github.com/chaosloop/chaosloop/scenarios"
)

// engine is what the lab needs of every engine package. Packages whose
// methods take more (kafka's topic options) are adapted to it.
type engine interface {
	Install(ctx context.Context) error
	Version(ctx context.Context) (string, error)
	Start(ctx context.Context, c *engines.Cluster) error
	StartMember(ctx context.Context, c *engines.Cluster, i int) error
	StopMember(ctx context.Context, c *engines.Cluster, i int) error
	Stop(ctx context.Context, c *engines.Cluster) error
	Status(ctx context.Context, c *engines.Cluster) (engines.Status, error)
	Endpoints(c *engines.Cluster) []string
}

// Engine names, as shown by status and reports.
const (
	EngineEtcd      = "etcd"
	EngineZooKeeper = "zookeeper"
	EngineGalera    = "mariadb-galera"
	EngineMariaDB   = "mariadb-async"
	EngineRedis     = "redis-sentinel"
	EngineKafka     = "kafka"
	EngineDocstore  = "ferretdb-patroni"
	EngineNone      = "none"
)

// engineFor names the engine that stands for a service kind in the lab.
func engineFor(sv *scenarios.Service) string {
	switch sv.Kind {
	case scenarios.KindEtcd, scenarios.KindRaft:
		// Any Raft service (vault, consul) is stood in for by etcd's Raft.
		return EngineEtcd
	case scenarios.KindZookeeper:
		return EngineZooKeeper
	case scenarios.KindMySQL:
		if sv.Replication == scenarios.ReplicationAsync {
			return EngineMariaDB // primary + replicas, no failover, like MySQL 5.7
		}
		return EngineGalera
	case scenarios.KindRedis:
		return EngineRedis
	case scenarios.KindKafka:
		return EngineKafka
	case scenarios.KindMongoDB:
		return EngineDocstore
	}
	return EngineNone
}

// portGroups lists the well-known ports an engine binds on its member's
// host address: two services whose groups meet on one node would clash.
var portGroups = map[string][]string{
	EngineEtcd:      {"etcd"},
	EngineZooKeeper: {"zookeeper"},
	EngineGalera:    {"mysql"},
	EngineMariaDB:   {"mysql"},
	EngineRedis:     {"redis"},
	EngineKafka:     {"kafka"},
	EngineDocstore:  {"etcd", "postgresql", "patroni", "mongodb"},
}

// engines builds engine values on demand; one per engine name per lab.
type engineSet struct {
	log   *slog.Logger
	cache string
	// mu guards made: Status probes every service concurrently.
	mu   sync.Mutex
	made map[string]engine
	// kafkaOptions derives a kafka service's broker and topic options.
	kafkaOptions func(*serviceState) (kafka.Options, error)
	// backend makes the engines another backend stands for services
	// with itself (see Machines.EngineFor).
	backend func(name string) (Engine, error)
}

func newEngineSet(log *slog.Logger, cache string) *engineSet {
	return &engineSet{log: log, cache: cache, made: map[string]engine{}}
}

func (s *engineSet) get(name string, svc *serviceState) (engine, error) {
	key := name
	if name == EngineKafka {
		key = name + "/" + svc.Name // options differ per kafka service
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.made[key]; ok {
		return e, nil
	}
	var e engine
	switch name {
	case EngineEtcd:
		e = etcd.New(s.log)
	case EngineZooKeeper:
		e = zookeeper.New(s.log)
	case EngineGalera:
		e = galera.New(s.log)
	case EngineMariaDB:
		e = mariadb.New(s.log)
	case EngineRedis:
		e = redis.New(s.log)
	case EngineDocstore:
		e = docstore.New(s.log, s.cache)
	case EngineKafka:
		if s.kafkaOptions == nil {
			return nil, fmt.Errorf("service %s: no kafka options", svc.Name)
		}
		o, err := s.kafkaOptions(svc)
		if err != nil {
			return nil, err
		}
		e = &kafkaEngine{e: kafka.New(s.log, s.cacheDir("kafka")), o: o}
	default:
		if s.backend == nil {
			return nil, fmt.Errorf("service %s: the local lab has no %s engine yet", svc.Name, name)
		}
		var err error
		if e, err = s.backend(name); err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
	}
	s.made[key] = e
	return e, nil
}

// serviceEngine returns a named service and its engine as a T, for the
// lab methods that only make sense for one engine (kind names it in the
// error).
func serviceEngine[T engine](l *Lab, service, kind string) (*serviceState, T, error) {
	var zero T
	ss, err := l.service(service)
	if err != nil {
		return nil, zero, err
	}
	e, err := l.eng.get(ss.Engine, ss)
	if err != nil {
		return nil, zero, err
	}
	t, ok := e.(T)
	if !ok {
		return nil, zero, fmt.Errorf("service %s is not a %s service", service, kind)
	}
	return ss, t, nil
}

// NewKafkaEngine is the kafka package's engine with a service's options
// (KafkaOptions), as the lab's other engines are.
func NewKafkaEngine(e *kafka.Engine, o kafka.Options) Engine { return &kafkaEngine{e: e, o: o} }

// kafkaEngine adapts the kafka package, whose methods take the topic and
// broker options the lab derives from the scenario.
type kafkaEngine struct {
	e *kafka.Engine
	o kafka.Options
}

func (k *kafkaEngine) Install(ctx context.Context) error {
	return k.e.Install(ctx, k.version())
}

func (k *kafkaEngine) version() string {
	if k.o.Version != "" {
		return k.o.Version
	}
	if k.o.ZooKeeper != "" {
		return kafka.DefaultZooKeeperVersion
	}
	return kafka.DefaultVersion
}

func (k *kafkaEngine) Version(ctx context.Context) (string, error) {
	if v, err := k.e.Version(ctx); err == nil {
		return v, nil
	}
	if k.e.Installed(k.version()) {
		return k.version(), nil
	}
	return "", fmt.Errorf("kafka %s is not in the cache", k.version())
}
func (k *kafkaEngine) Start(ctx context.Context, c *engines.Cluster) error {
	return k.e.Start(ctx, c, k.o)
}
func (k *kafkaEngine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	return k.e.StartMember(ctx, c, k.o, i)
}
func (k *kafkaEngine) Launch(ctx context.Context, c *engines.Cluster, i int) error {
	return k.e.Launch(ctx, c, k.o, i)
}
func (k *kafkaEngine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	return k.e.StopMember(ctx, c, k.o, i)
}
func (k *kafkaEngine) Stop(ctx context.Context, c *engines.Cluster) error { return k.e.Stop(ctx, c) }
func (k *kafkaEngine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	return k.e.Status(ctx, c, k.o)
}
func (k *kafkaEngine) Endpoints(c *engines.Cluster) []string { return k.e.Endpoints(c) }

// ElectPreferredLeaders makes the first broker of each partition's replica
// list its leader, waiting at most wait (kafka.Engine's, with the
// service's options).
func (k *kafkaEngine) ElectPreferredLeaders(ctx context.Context, c *engines.Cluster, wait time.Duration) error {
	return k.e.ElectPreferredLeaders(ctx, c, k.o, wait)
}

// Topics of the Mojaloop transfer pipeline, created on every kafka service.
var Topics = []string{"topic-transfer-prepare", "topic-transfer-position", "topic-transfer-fulfil", "topic-notification-event"}

// mustEndpoints returns a service's client endpoints ("" engine: none).
func (s *engineSet) mustEndpoints(ss *serviceState) []string {
	e, err := s.get(ss.Engine, ss)
	if err != nil {
		return nil
	}
	return e.Endpoints(&ss.Cluster)
}

// cacheDir is where an engine keeps what it downloads or builds.
func (s *engineSet) cacheDir(engine string) string { return filepath.Join(s.cache, engine) }
