package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

func topo(t *testing.T, yaml string) *topology.Topology {
	sc, err := scenarios.ParseBytes(t.Context(), "t.yaml", []byte(yaml))
	require.NoError(t, err)
	tp, err := topology.Build(sc)
	require.NoError(t, err)
	return tp
}

const nodes = `name: t
sites:
  - name: dc1
    racks:
      - name: r1
        power: [p]
        switches: [s]
        nodes:
          - {name: n1, pools: [P]}
          - {name: n2, pools: [P]}
          - {name: n3, pools: [P]}
services:
`

// What deploy mode takes: etcd, KRaft Kafka, Redis, Galera and the
// document store, one member per node.
func TestDeployable(t *testing.T) {
	tp := topo(t, nodes+`  - {name: etcd, kind: etcd, replicas: 3, pool: P}
  - {name: vault, kind: raft, replicas: 3, pool: P}
  - {name: kafka, kind: kafka, replicas: 3, pool: P}
  - {name: zk, kind: zookeeper, replicas: 3, pool: P}
  - {name: kafka-zk, kind: kafka, replicas: 3, pool: P, controller: zk}
  - {name: cache, kind: redis, replicas: 3, pool: P}
  - {name: db, kind: mysql, replicas: 3, pool: P}
  - {name: db-async, kind: mysql, replication: async, replicas: 3, pool: P}
  - {name: docs, kind: mongodb, replicas: 3, pool: P}
  - {name: handlers, kind: stateless, replicas: 2, pool: P}
`)
	require.NoError(t, Deployable(tp.Service("etcd")))
	require.NoError(t, Deployable(tp.Service("vault")), "a Raft service is stood in for by etcd")
	require.NoError(t, Deployable(tp.Service("kafka")))
	require.EqualError(t, Deployable(tp.Service("kafka-zk")), "chaosloop deploys Kafka in KRaft mode only on a cluster yet, not with its controller zk")
	require.NoError(t, Deployable(tp.Service("cache")))
	require.NoError(t, Deployable(tp.Service("db")), "Galera")
	require.NoError(t, Deployable(tp.Service("docs")), "FerretDB on Patroni")
	require.EqualError(t, Deployable(tp.Service("db-async")), "chaosloop deploys only etcd (and Raft), KRaft Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet, not a mysql service with replication: async")
	require.EqualError(t, Deployable(tp.Service("handlers")), "chaosloop deploys only etcd (and Raft), KRaft Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet, not a stateless service")
	b, ok := FailoverBudget(tp.Service("kafka"))
	require.True(t, ok)
	require.Contains(t, b.Derivation, "session")
	b, ok = FailoverBudget(tp.Service("db"))
	require.True(t, ok)
	require.Contains(t, b.Derivation, "evs.inactive_timeout")
	b, ok = FailoverBudget(tp.Service("docs"))
	require.True(t, ok)
	require.Contains(t, b.Derivation, "Patroni ttl")
	_, ok = FailoverBudget(tp.Service("db-async"))
	require.False(t, ok)

	sel, err := MemberSelector("t", "etcd-1")
	require.NoError(t, err)
	require.Equal(t, "app.kubernetes.io/managed-by=chaosloop,chaosloop.io/scenario=t,chaosloop.io/member=etcd-1,!chaosloop.io/once", sel)

	objs := PlanObjects(tp, nil, nil, 2000, false)
	require.Len(t, objs, 27, "a pod per etcd, raft, KRaft kafka and Galera member, two per redis member (its Sentinel's), three per document store member (its Patroni's, etcd's and FerretDB's), none of the others")
	require.True(t, strings.HasPrefix(objs[3].Purpose, "member 0 of service/vault (etcd, from the etcd image in --registry) on node/n1, in its network at ports 4379, 4380"), objs[3].Purpose)
	require.Equal(t, "kafka-1.kafka", objs[7].Name)
	require.True(t, strings.HasPrefix(objs[7].Purpose, "member 1 of service/kafka (kafka, from the kafka image in --registry) on node/n2, in its network at ports 11092, 11093"), objs[7].Purpose)
	require.Equal(t, []string{"cache-0.redis", "cache-0.sentinel"}, []string{objs[9].Name, objs[10].Name})
	require.Contains(t, objs[10].Purpose, "(redis-sentinel, from the redis image in --registry) on node/n1, in its network at ports 8379, 28379")
	k := slices.IndexFunc(objs, func(o k3s.Object) bool { return o.Name == "db-2.mariadbd" })
	require.GreaterOrEqual(t, k, 0)
	require.Contains(t, objs[k].Purpose, "(mariadb-galera, from the mariadb image in --registry) on node/n3, in its network at ports 5306, 6567, 6568, 6444")
	k = slices.IndexFunc(objs, func(o k3s.Object) bool { return o.Name == "docs-1.patroni" })
	require.GreaterOrEqual(t, k, 0)
	require.Equal(t, []string{"docs-1.patroni", "docs-1.etcd", "docs-1.ferretdb"}, []string{objs[k].Name, objs[k+1].Name, objs[k+2].Name})
	require.Contains(t, objs[k].Purpose, "(ferretdb-patroni, from the docstore image in --registry) on node/n2, in its network at ports 4379, 4380, 7432, 10008, 29017, 10088")

	// a run that drives the load adds the stateless service's workers
	withLoad := PlanObjects(tp, nil, nil, 2000, true)
	require.Len(t, withLoad, 29)
	require.Equal(t, []string{"handlers-0.worker", "handlers-1.worker"}, []string{withLoad[27].Name, withLoad[28].Name})
	require.Contains(t, withLoad[28].Purpose, "worker 1 of service/handlers (the run's transfer handler, /usr/local/bin/chaosloop in the agents' image) on node/n2")
}
