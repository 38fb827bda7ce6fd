package local

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/lab"
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

// kafkaArtifact is what the kafka engine resolves from Maven Central.
const kafkaArtifact = "org.apache.kafka:kafka_2.13"

var inventory = []struct {
	engine, kinds, source string
	kafkaVersion          string
	pins                  []string
}{
	{EngineEtcd, "etcd, raft", "Debian etcd-server 3.4.23", "", etcd.Packages},
	{EngineZooKeeper, "zookeeper", "Debian zookeeper 3.8.0", "", zookeeper.Packages},
	{EngineGalera, "mysql (group)", "Debian mariadb-server 10.11 + galera-4", "", galera.Packages},
	{EngineMariaDB, "mysql (async)", "Debian mariadb-server 10.11", "", mariadb.Packages},
	{EngineRedis, "redis", "Debian redis-server + redis-sentinel 7.0", "", redis.Packages},
	{EngineKafka, "kafka (KRaft)", "Maven Central " + kafkaArtifact + ":" + kafka.DefaultVersion, kafka.DefaultVersion, []string{kafkaArtifact + ":" + kafka.DefaultVersion}},
	{EngineKafka, "kafka (ZooKeeper mode)", "Maven Central " + kafkaArtifact + ":" + kafka.DefaultZooKeeperVersion, kafka.DefaultZooKeeperVersion, []string{kafkaArtifact + ":" + kafka.DefaultZooKeeperVersion}},
	{EngineDocstore, "mongodb", "FerretDB " + docstore.FerretDBVersion + " (built from the Go module) over Debian postgresql-15 + patroni + etcd", "",
		append([]string{docstore.FerretDBModule + "@" + docstore.FerretDBVersion}, docstore.Packages...)},
}

// PinnedEngine is one engine of the local lab and exactly what it installs.
type PinnedEngine struct {
	Engine string   `json:"engine"`
	Kinds  string   `json:"kinds"`
	Source string   `json:"source"`
	Pins   []string `json:"pins"` // Debian package=version, Maven coordinates, Go module@version
}

// Pinned lists the engines' pinned versions without looking at the
// machine (for `chaosloop version`).
func Pinned() []PinnedEngine {
	out := make([]PinnedEngine, 0, len(inventory))
	for _, it := range inventory {
		out = append(out, PinnedEngine{Engine: it.engine, Kinds: it.kinds, Source: it.source, Pins: slices.Clone(it.pins)})
	}
	return out
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
	opts.progress(lab.Progress{Service: "network", Stage: "installing"})
	if err := netlab.Install(opts.installing(ctx, "network"), opts.Log); err != nil {
		return err
	}
	opts.progress(lab.Progress{Service: "network", Stage: "done"})
	s := newEngineSet(opts.Log, opts.Cache)
	for _, it := range inventory {
		name := it.engine
		if it.kafkaVersion != "" {
			name += " " + it.kafkaVersion
		}
		opts.progress(lab.Progress{Service: name, Stage: "installing", Detail: it.source})
		e, err := s.forInventory(it.engine, it.kafkaVersion)
		if err == nil {
			err = e.Install(opts.installing(ctx, name))
		}
		if err != nil {
			opts.progress(lab.Progress{Service: name, Stage: "failed", Err: err})
			return fmt.Errorf("installing %s: %w", name, err)
		}
		opts.progress(lab.Progress{Service: name, Stage: "done"})
	}
	return nil
}
