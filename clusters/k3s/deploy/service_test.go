package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
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

// What deploy mode takes: etcd, ZooKeeper, Kafka (on the scenario's
// ZooKeeper when it has one), Redis, Galera and the document store, one
// member per node.
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
	require.NoError(t, Deployable(tp.Service("zk")))
	require.NoError(t, Deployable(tp.Service("kafka-zk")), "ZooKeeper mode, on the zk chaosloop deploys")
	require.NoError(t, Deployable(tp.Service("cache")))
	require.NoError(t, Deployable(tp.Service("db")), "Galera")
	require.NoError(t, Deployable(tp.Service("docs")), "FerretDB on Patroni")
	require.EqualError(t, Deployable(tp.Service("db-async")), "chaosloop deploys only etcd (and Raft), ZooKeeper, Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet, not a mysql service with replication: async")
	require.EqualError(t, Deployable(tp.Service("handlers")), "chaosloop deploys only etcd (and Raft), ZooKeeper, Kafka, Redis, Galera (mysql, replication: group) and FerretDB on Patroni (mongodb) services on a cluster yet, not a stateless service")
	b, ok := FailoverBudget(tp.Service("kafka"))
	require.True(t, ok)
	require.Contains(t, b.Derivation, "zookeeper.session.timeout", "the scenario's only zookeeper service is its controller")
	b, ok = FailoverBudget(tp.Service("zk"))
	require.True(t, ok)
	require.Contains(t, b.Derivation, "syncLimit")
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
	require.Len(t, objs, 33, "a pod per etcd, raft, zookeeper, kafka and Galera member, two per redis member (its Sentinel's), three per document store member (its Patroni's, etcd's and FerretDB's), none of the others")
	require.True(t, strings.HasPrefix(objs[3].Purpose, "member 0 of service/vault (etcd, from the etcd image in --registry) on node/n1, in its network at ports 4379, 4380"), objs[3].Purpose)
	require.Equal(t, "kafka-1.kafka", objs[7].Name)
	require.True(t, strings.HasPrefix(objs[7].Purpose, "member 1 of service/kafka (kafka, from the kafka image in --registry) on node/n2, in its network at ports 11092;"), objs[7].Purpose)
	require.Equal(t, "zk-2.zookeeper", objs[11].Name)
	require.True(t, strings.HasPrefix(objs[11].Purpose, "member 2 of service/zk (zookeeper, from the zookeeper image in --registry) on node/n3, in its network at ports 4181, 4888, 5888;"), objs[11].Purpose)
	require.Equal(t, []string{"cache-0.redis", "cache-0.sentinel"}, []string{objs[15].Name, objs[16].Name})
	require.Contains(t, objs[16].Purpose, "(redis-sentinel, from the redis image in --registry) on node/n1, in its network at ports 8379, 28379")
	k := slices.IndexFunc(objs, func(o k3s.Object) bool { return o.Name == "db-2.mariadbd" })
	require.GreaterOrEqual(t, k, 0)
	require.Contains(t, objs[k].Purpose, "(mariadb-galera, from the mariadb image in --registry) on node/n3, in its network at ports 5306, 6567, 6568, 6444")
	k = slices.IndexFunc(objs, func(o k3s.Object) bool { return o.Name == "docs-1.patroni" })
	require.GreaterOrEqual(t, k, 0)
	require.Equal(t, []string{"docs-1.patroni", "docs-1.etcd", "docs-1.ferretdb"}, []string{objs[k].Name, objs[k+1].Name, objs[k+2].Name})
	require.Contains(t, objs[k].Purpose, "(ferretdb-patroni, from the docstore image in --registry) on node/n2, in its network at ports 4379, 4380, 7432, 10008, 29017, 10088")

	// a run that drives the load adds the stateless service's workers
	withLoad := PlanObjects(tp, nil, nil, 2000, true)
	require.Len(t, withLoad, 35)
	require.Equal(t, []string{"handlers-0.worker", "handlers-1.worker"}, []string{withLoad[33].Name, withLoad[34].Name})
	require.Contains(t, withLoad[34].Purpose, "worker 1 of service/handlers (the run's transfer handler, /usr/local/bin/chaosloop in the agents' image) on node/n2")
}

// A Kafka in ZooKeeper mode connects to its ensemble where chaosloop
// deploys it: its members' nodes' addresses at ZooKeeper's client port
// plus the offset, in a chroot of its own; it is refused on an attached
// ensemble, whose ports chaosloop does not know.
func TestKafkaOnZooKeeper(t *testing.T) {
	tp := topo(t, nodes+`  - {name: zk, kind: zookeeper, replicas: 3, pool: P}
  - {name: kafka, kind: kafka, replicas: 3, pool: P}
  - {name: etcd, kind: etcd, replicas: 3, pool: P}
`)
	cs := fake.NewClientset()
	var ns []k3stest.Node
	for i := range 3 {
		ns = append(ns, k3stest.Node{Name: fmt.Sprintf("n%d", i+1), IP: fmt.Sprintf("198.18.0.%d", 10+i)})
	}
	k3stest.Nodes(t, cs, ns...)
	o := Options{Cluster: &k3s.Cluster{Client: cs}, Scenario: "t", PortOffset: 2000}
	zk, err := zooKeeperOf(t.Context(), o, tp.Service("kafka"))
	require.NoError(t, err)
	require.Equal(t, "198.18.0.10:4181,198.18.0.11:4181,198.18.0.12:4181/kafka-kafka", zk)
	for _, other := range []string{"zk", "etcd"} {
		zk, err = zooKeeperOf(t.Context(), o, tp.Service(other))
		require.NoError(t, err)
		require.Empty(t, zk, other)
	}

	tp.Service("zk").Spec.Attach = &scenarios.Attach{}
	require.EqualError(t, Deployable(tp.Service("kafka")), "chaosloop deploys Kafka in ZooKeeper mode only on a ZooKeeper it deploys too, not on the attached zk")
}
