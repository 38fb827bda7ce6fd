package local

import (
	"context"
	"fmt"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
)

// EngineInfo describes one engine of the local lab on this machine.
type EngineInfo struct {
	Engine    string `json:"engine"`
	Kinds     string `json:"kinds"`
	Source    string `json:"source"`
	Installed bool   `json:"installed"`
	Version   string `json:"version,omitempty"`
	Error     string `json:"error,omitempty"`
}

var inventory = []struct {
	engine, kinds, source string
	kafkaVersion          string
}{
	{EngineEtcd, "etcd, raft", "Debian etcd-server 3.4.23", ""},
	{EngineZooKeeper, "zookeeper", "Debian zookeeper 3.8.0", ""},
	{EngineGalera, "mysql (group)", "Debian mariadb-server 10.11 + galera-4", ""},
	{EngineMariaDB, "mysql (async)", "Debian mariadb-server 10.11", ""},
	{EngineRedis, "redis", "Debian redis-server + redis-sentinel 7.0", ""},
	{EngineKafka, "kafka (KRaft)", "Maven Central org.apache.kafka:kafka_2.13:" + kafka.DefaultVersion, kafka.DefaultVersion},
	{EngineKafka, "kafka (ZooKeeper mode)", "Maven Central org.apache.kafka:kafka_2.13:" + kafka.DefaultZooKeeperVersion, kafka.DefaultZooKeeperVersion},
	{EngineDocstore, "mongodb", "FerretDB v1.24.2 (built from the Go module) over Debian postgresql-15 + patroni + etcd", ""},
}

func (s *engineSet) forInventory(name, kafkaVersion string) (engine, error) {
	if name == EngineKafka {
		return &kafkaEngine{e: kafka.New(s.log, s.cacheDir("kafka")), o: kafka.Options{Version: kafkaVersion}}, nil
	}
	return s.get(name, &serviceState{Name: name})
}

// Engines reports which engines are installed here and their versions.
func Engines(ctx context.Context, opts Options) []EngineInfo {
	opts = opts.withDefaults()
	s := newEngineSet(opts.Log, opts.Cache)
	var out []EngineInfo
	for _, it := range inventory {
		info := EngineInfo{Engine: it.engine, Kinds: it.kinds, Source: it.source}
		e, err := s.forInventory(it.engine, it.kafkaVersion)
		if err == nil {
			vctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			info.Version, err = e.Version(vctx)
			cancel()
		}
		if err != nil {
			info.Error = err.Error()
		} else {
			info.Installed = info.Version != ""
		}
		out = append(out, info)
	}
	return out
}

// InstallEngines installs every engine (and the network tools), reporting
// each step.
func InstallEngines(ctx context.Context, opts Options) error {
	if err := Supported(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	opts.progress(Progress{Service: "network", Stage: "installing"})
	if err := netlab.Install(ctx, opts.Log); err != nil {
		return err
	}
	opts.progress(Progress{Service: "network", Stage: "done"})
	s := newEngineSet(opts.Log, opts.Cache)
	for _, it := range inventory {
		name := it.engine
		if it.kafkaVersion != "" {
			name += " " + it.kafkaVersion
		}
		opts.progress(Progress{Service: name, Stage: "installing", Detail: it.source})
		e, err := s.forInventory(it.engine, it.kafkaVersion)
		if err == nil {
			err = e.Install(ctx)
		}
		if err != nil {
			opts.progress(Progress{Service: name, Stage: "failed", Err: err})
			return fmt.Errorf("installing %s: %w", name, err)
		}
		opts.progress(Progress{Service: name, Stage: "done"})
	}
	return nil
}
