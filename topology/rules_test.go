package topology

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Hand-computed expectations for the rules of spec sections 4 (a dark site
// transits nothing) and 5 (kafka's control plane).

func buildYAML(t *testing.T, src string) *Topology {
	t.Helper()
	raw, err := scenarios.Decode("rules.yaml", []byte(src))
	require.NoError(t, err)
	sc := raw.WithDefaults()
	require.NoError(t, sc.Validate())
	topo, err := Build(sc)
	require.NoError(t, err)
	return topo
}

func fault(t *testing.T, action, target string) Fault {
	t.Helper()
	tg, err := scenarios.ParseTarget(target)
	require.NoError(t, err)
	return Fault{Action: action, Target: tg}
}

// judgeUnder applies faults, judges a service, and reverts them.
func judgeUnder(t *testing.T, topo *Topology, service string, faults ...Fault) Judgement {
	t.Helper()
	st := NewState(topo)
	for _, f := range faults {
		require.NoError(t, st.Apply(f))
	}
	return st.Judge(topo.Service(service))
}

// Three sites in a line: dc1 - dc2 - dc3, dc2 with two racks.
const lineYAML = `
name: line
sites:
  - {name: dc1, racks: [{name: r1, power: [dc1-p], switches: [dc1-s], nodes: [{name: dc1-n, pools: [P]}]}]}
  - name: dc2
    racks:
      - {name: r1, power: [dc2-p1], switches: [dc2-s1], nodes: [{name: dc2-n1, pools: [P]}]}
      - {name: r2, power: [dc2-p2], switches: [dc2-s2], nodes: [{name: dc2-n2, pools: [Q]}]}
  - {name: dc3, racks: [{name: r1, power: [dc3-p], switches: [dc3-s], nodes: [{name: dc3-n, pools: [P]}]}]}
links:
  - {between: [dc1, dc2]}
  - {between: [dc2, dc3]}
services:
  - {name: etcd, kind: etcd, pool: P, replicas: 3, spread: site}
`

func TestDarkSiteTransitsNothing(t *testing.T) {
	topo := buildYAML(t, lineYAML)
	n1, n3 := topo.Node("dc1-n"), topo.Node("dc3-n")
	siteOff := fault(t, scenarios.ActionPowerOff, "site/dc2")
	st := NewState(topo)
	reach := func() bool { return st.Component(n1) == st.Component(n3) }
	require.True(t, reach(), "dc2 transits dc1 <-> dc3")

	require.NoError(t, st.Apply(siteOff))
	require.False(t, reach(), "power-off of site dc2 takes its router down")
	require.NoError(t, st.Apply(siteOff))
	require.NoError(t, st.Revert(siteOff))
	require.False(t, reach(), "still dark after one of two site power-offs is reverted")
	require.NoError(t, st.Revert(siteOff))
	require.True(t, reach())

	destroy := fault(t, scenarios.ActionDestroy, "site/dc2")
	require.NoError(t, st.Apply(destroy))
	require.False(t, reach(), "destroy of a site takes its router down too")
	require.NoError(t, st.Revert(destroy))

	// Every rack, feed or switch of dc2 failing leaves the router running.
	for _, group := range [][]Fault{
		{fault(t, scenarios.ActionPowerOff, "rack/dc2/r1"), fault(t, scenarios.ActionPowerOff, "rack/dc2/r2")},
		{fault(t, scenarios.ActionPowerOff, "feed/dc2-p1"), fault(t, scenarios.ActionPowerOff, "feed/dc2-p2")},
		{fault(t, scenarios.ActionPowerOff, "node/dc2-n1"), fault(t, scenarios.ActionPowerOff, "node/dc2-n2")},
		{fault(t, scenarios.ActionIsolate, "switch/dc2-s1"), fault(t, scenarios.ActionIsolate, "switch/dc2-s2")},
	} {
		for _, f := range group {
			require.NoError(t, st.Apply(f))
		}
		require.True(t, reach(), "%v leave dc2's router running", group)
		// A site power-off on top darkens the router; reverting it
		// restores transit although the racks stay dark.
		require.NoError(t, st.Apply(siteOff))
		require.False(t, reach())
		require.NoError(t, st.Revert(siteOff))
		require.True(t, reach(), "%v", group)
		for _, f := range group {
			require.NoError(t, st.Revert(f))
		}
	}

	// The verdicts: etcd has one member per site.
	require.Equal(t, Judgement{Verdict: ReadOnly, MembersUp: 1}, judgeUnder(t, topo, "etcd", siteOff),
		"dc1 and dc3 are cut apart: 1 of 3 in the serving component")
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 2}, judgeUnder(t, topo, "etcd",
		fault(t, scenarios.ActionPowerOff, "rack/dc2/r1"), fault(t, scenarios.ActionPowerOff, "rack/dc2/r2")),
		"all racks of dc2 dark, dc1 and dc3 still meet through it")

	// The same through Analyze at depth 2.
	a := topo.Analyze(2)
	got := map[string]Verdict{}
	for k := range a.Failures {
		f := &a.Failures[k]
		key := ""
		for _, p := range a.DomainPaths(f) {
			key += p + " "
		}
		got[key] = f.Judgements[0].Verdict
	}
	require.Equal(t, ReadOnly, got["site/dc2 "])
	require.Equal(t, Degraded, got["rack/dc2/r1 "])
	require.Equal(t, Degraded, got["rack/dc2/r1 rack/dc2/r2 "])
	require.Equal(t, ReadOnly, got["rack/dc2/r1 site/dc2 "])
	require.Equal(t, ReadOnly, got["link/dc1/dc2 node/dc2-n1 "], "a cut link still cuts")
}

// KRaft kafka of 6 brokers: the controllers are members 0, 1 and 2.
// Placement puts members 0-2 on site a, 3-5 on site b; the broker list
// alternates racks: [0 3 1 4 2 5], so with replicationFactor 2 partition p
// is [list[p], list[p+1]]: [0 3] [3 1] [1 4] [4 2] [2 5] [5 0].
const kraftYAML = `
name: kraft
sites:
  - {name: a, racks: [{name: r, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [K]}, {name: a2, pools: [K]}, {name: a3, pools: [K]}]}]}
  - {name: b, racks: [{name: r, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [K]}, {name: b2, pools: [K]}, {name: b3, pools: [K]}]}]}
services:
  - {name: kafka, kind: kafka, pool: K, placement: [a1, a2, a3, b1, b2, b3], replicationFactor: 2, minInSync: 1, partitions: 6}
`

func TestKafkaKRaftControllers(t *testing.T) {
	topo := buildYAML(t, kraftYAML)
	k := topo.Service("kafka")
	require.Nil(t, k.ControllerService)
	require.Equal(t, []string{"a1", "a2", "a3"}, nodeNames(k.Controller), "more than 5 brokers: members 0, 1, 2")
	require.Equal(t, [][]int{{0, 3}, {3, 1}, {1, 4}, {4, 2}, {2, 5}, {5, 0}}, k.Partitions)

	// Site b dark: controllers 0-2 all up with the serving brokers; every
	// partition keeps a replica in sync (minInSync 1).
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 3}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "site/b")))
	// Site a dark: no controller up, so partitions led by a1-a3 cannot move
	// their leader. The old rules alone would say degraded.
	require.Equal(t, Judgement{Verdict: Down, MembersUp: 3}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "site/a")))
	// One controller down (a1): 2 of 3 keep quorum.
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 5}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "node/a1")))
	// Two controllers down: no quorum; partitions [0 3] and [5 0] lost leader a1.
	require.Equal(t, Judgement{Verdict: Down, MembersUp: 4}, judgeUnder(t, topo, "kafka",
		fault(t, scenarios.ActionPowerOff, "node/a1"), fault(t, scenarios.ActionPowerOff, "node/a2")))
	// Members 4 and 5 down (not controllers): quorum held, leaders move.
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 4}, judgeUnder(t, topo, "kafka",
		fault(t, scenarios.ActionPowerOff, "node/b2"), fault(t, scenarios.ActionPowerOff, "node/b3")))
}

// Four brokers, every one a controller: a 2/2 split keeps the serving
// component (member 0's) but no controller majority. The only partition is
// led from the serving side, with its follower on the other side: writes wait
// on a follower the controller cannot remove, so read-only; the old rules
// (minInSync 1) said degraded.
const splitYAML = `
name: split
sites:
  - {name: a, racks: [{name: r, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [K]}, {name: a2, pools: [K]}]}]}
  - {name: b, racks: [{name: r, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [K]}, {name: b2, pools: [K]}]}]}
services:
  - {name: kafka, kind: kafka, pool: K, placement: [a1, a2, b1, b2], replicationFactor: 2, minInSync: 1, partitions: 1}
`

func TestKafkaFrozenFollowerIsReadOnly(t *testing.T) {
	topo := buildYAML(t, splitYAML)
	k := topo.Service("kafka")
	require.Equal(t, []string{"a1", "a2", "b1", "b2"}, nodeNames(k.Controller), "at most 5 brokers: all of them")
	require.Equal(t, [][]int{{0, 2}}, k.Partitions)
	require.Equal(t, Judgement{Verdict: ReadOnly, MembersUp: 2}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionIsolate, "link/a/b")))
	// b2 alone down: 3 of 4 controllers, quorum; the partition is whole.
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 3}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "node/b2")))
	// b1 and b2 down: serving a1, a2 — 2 of 4 controllers is no majority,
	// and the follower b1 cannot be removed from the ISR.
	require.Equal(t, Judgement{Verdict: ReadOnly, MembersUp: 2}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "site/b")))
}

// ZooKeeper mode: brokers on sites a and b, two zookeeper ensembles; kafka
// names zk-c (on site c) as its controller.
const zkYAML = `
name: zk
sites:
  - {name: a, racks: [{name: r, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [K]}, {name: a2, pools: [K]}, {name: az, pools: [Z]}]}]}
  - {name: b, racks: [{name: r, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [K]}]}]}
  - {name: c, racks: [{name: r, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [ZC]}, {name: c2, pools: [ZC]}, {name: c3, pools: [ZC]}]}]}
services:
  - {name: kafka, kind: kafka, pool: K, placement: [a1, b1, a2], controller: zk-c}
  - {name: zk-a, kind: zookeeper, pool: Z, replicas: 1}
  - {name: zk-c, kind: zookeeper, pool: ZC, replicas: 3}
`

func TestKafkaZooKeeperController(t *testing.T) {
	topo := buildYAML(t, zkYAML)
	k := topo.Service("kafka")
	require.Equal(t, "zk-c", k.ControllerService.Name)
	require.Equal(t, []string{"c1", "c2", "c3"}, nodeNames(k.Controller))

	// zk-c cut off: every broker still in sync, nothing needs the controller.
	require.Equal(t, Judgement{Verdict: OK, MembersUp: 3}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionIsolate, "site/c")))
	// b1 down with the controller reachable: leaders move, 2 of 3 in sync.
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 2}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "node/b1")))
	// b1 down and zk-c cut off: partitions led by b1 are down.
	require.Equal(t, Judgement{Verdict: Down, MembersUp: 2}, judgeUnder(t, topo, "kafka",
		fault(t, scenarios.ActionPowerOff, "node/b1"), fault(t, scenarios.ActionIsolate, "site/c")))
	// zk-c with one member down keeps its majority.
	require.Equal(t, Judgement{Verdict: Degraded, MembersUp: 2}, judgeUnder(t, topo, "kafka",
		fault(t, scenarios.ActionPowerOff, "node/b1"), fault(t, scenarios.ActionPowerOff, "node/c1")))
	// Site a dark (zk-a with it, which is not kafka's controller): b1 is
	// alone, every partition keeps it but has 1 of minInSync 2 in sync, and
	// zk-c reaches b1 directly.
	require.Equal(t, Judgement{Verdict: ReadOnly, MembersUp: 1}, judgeUnder(t, topo, "kafka", fault(t, scenarios.ActionPowerOff, "site/a")))
}

func TestOnlyZooKeeperIsTheDefaultController(t *testing.T) {
	topo := buildYAML(t, `
name: zk1
sites:
  - {name: a, racks: [{name: r, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [K, Z]}, {name: a2, pools: [K, Z]}, {name: a3, pools: [K, Z]}]}]}
services:
  - {name: kafka, kind: kafka, pool: K}
  - {name: zk, kind: zookeeper, pool: Z}
`)
	require.Equal(t, "zk", topo.Service("kafka").ControllerService.Name)

	raw, err := scenarios.Decode("x.yaml", []byte(`
name: zk2
sites:
  - {name: a, racks: [{name: r, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [K, Z]}, {name: a2, pools: [K, Z]}, {name: a3, pools: [K, Z]}]}]}
services:
  - {name: kafka, kind: kafka, pool: K}
  - {name: zk, kind: zookeeper, pool: Z}
  - {name: zk2, kind: zookeeper, pool: Z}
`))
	require.NoError(t, err)
	require.ErrorContains(t, raw.WithDefaults().Validate(), `x.yaml:6:5: kafka service "kafka": controller is required`)
}

func nodeNames(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}
