package deploy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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

// What deploy mode takes: etcd, one member per node.
func TestDeployable(t *testing.T) {
	tp := topo(t, nodes+`  - {name: etcd, kind: etcd, replicas: 3, pool: P}
  - {name: vault, kind: raft, replicas: 3, pool: P}
  - {name: cache, kind: redis, replicas: 3, pool: P}
  - {name: handlers, kind: stateless, replicas: 2, pool: P}
`)
	require.NoError(t, Deployable(tp.Service("etcd")))
	require.NoError(t, Deployable(tp.Service("vault")), "a Raft service is stood in for by etcd")
	require.EqualError(t, Deployable(tp.Service("cache")), "chaosloop deploys only etcd (and Raft) services on a cluster yet, not a redis service")
	require.EqualError(t, Deployable(tp.Service("handlers")), "chaosloop deploys only etcd (and Raft) services on a cluster yet, not a stateless service")

	sel, err := MemberSelector("t", "etcd-1")
	require.NoError(t, err)
	require.Equal(t, "app.kubernetes.io/managed-by=chaosloop,chaosloop.io/scenario=t,chaosloop.io/member=etcd-1", sel)

	objs := PlanObjects(tp, nil, nil, 0)
	require.Len(t, objs, 6, "a pod per etcd and raft member, none of the others")
	require.True(t, strings.HasPrefix(objs[3].Purpose, "member 0 of service/vault (etcd, from the etcd image in --registry) on node/n1, in its network at ports 2379-2380"), objs[3].Purpose)
}
