package local

import (
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
	"github.com/chaosloop/chaosloop/scenarios"
)

// FailoverBudget is the failover budget of an engine as the lab configures
// it (zooKeeper: Kafka in ZooKeeper mode). Each engine package derives it
// from the settings it writes, so the two cannot drift.
func FailoverBudget(engine string, zooKeeper bool) engines.Budget {
	switch engine {
	case EngineEtcd:
		return etcd.FailoverBudget()
	case EngineZooKeeper:
		return zookeeper.FailoverBudget()
	case EngineGalera:
		return galera.FailoverBudget()
	case EngineRedis:
		return redis.FailoverBudget()
	case EngineKafka:
		return kafka.FailoverBudget(zooKeeper)
	case EngineDocstore:
		return docstore.FailoverBudget()
	}
	return engines.WithMargin(0, "no election: members are up with their nodes")
}

// KindFailoverBudget is the budget of the engine that stands for a service
// kind in the lab (Kafka in KRaft mode, as the lab runs it without a
// ZooKeeper service).
func KindFailoverBudget(kind string) engines.Budget {
	return FailoverBudget(engineFor(&scenarios.Service{Kind: kind}), false)
}

// FailoverBudgets returns every service's failover budget, by name.
func (l *Lab) FailoverBudgets() map[string]engines.Budget {
	out := make(map[string]engines.Budget, len(l.st.Services))
	for _, ss := range l.st.Services {
		out[ss.Name] = FailoverBudget(ss.Engine, ss.Controller != "")
		if l.mach == nil {
			continue
		}
		if e, err := l.mach.Engine(ss.Engine); err == nil {
			if b, ok := e.(budgeter); ok {
				out[ss.Name] = b.FailoverBudget()
			}
		}
	}
	return out
}
