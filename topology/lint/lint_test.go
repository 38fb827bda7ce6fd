package lint_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
	"github.com/chaosloop/chaosloop/topology/lint"
)

func check(t *testing.T, yaml string) []lint.Finding {
	t.Helper()
	s, err := scenarios.Decode("t.yaml", []byte(yaml))
	require.NoError(t, err)
	d := s.WithDefaults()
	require.NoError(t, d.Validate())
	topo, err := topology.Build(d)
	require.NoError(t, err)
	return lint.Check(topo)
}

func rules(fs []lint.Finding) map[string]lint.Severity {
	m := map[string]lint.Severity{}
	for _, f := range fs {
		m[f.Rule] = f.Severity
	}
	return m
}

// good is a layout that follows every recommendation: each rule's negative
// control below breaks exactly one of them.
const good = `
name: good
sites:
  - name: a
    racks:
      - {name: r1, power: [a-p1], switches: [a-s1], nodes: [{name: a1, pools: [KAFKA-DATA-PLANE], cpu: 4, memory: 32Gi, disk: 500Gi}]}
  - name: b
    racks:
      - {name: r1, power: [b-p1], switches: [b-s1], nodes: [{name: b1, pools: [KAFKA-DATA-PLANE], cpu: 4, memory: 32Gi, disk: 500Gi}]}
  - name: c
    racks:
      - {name: r1, power: [c-p1], switches: [c-s1], nodes: [{name: c1, pools: [KAFKA-DATA-PLANE], cpu: 4, memory: 32Gi, disk: 500Gi}]}
services:
  - {name: k, kind: kafka, pool: KAFKA-DATA-PLANE, replicas: 3, replicationFactor: 3, minInSync: 2}
`

func TestGoodLayoutHasNoFindings(t *testing.T) {
	require.Empty(t, check(t, good))
}

func TestRules(t *testing.T) {
	cases := []struct {
		name, yaml, rule string
		sev              lint.Severity
	}{
		{"pool below three nodes", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [CORE-HANDLERS]}, {name: n2, pools: [CORE-HANDLERS]}]}]}]
`, lint.RulePoolSize, lint.Error},
		{"even pool", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [CORE-HANDLERS]}, {name: n2, pools: [CORE-HANDLERS]}, {name: n3, pools: [CORE-HANDLERS]}, {name: n4, pools: [CORE-HANDLERS]}]}]}]
`, lint.RulePoolEven, lint.Warning},
		{"node below Initial size", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [KAFKA-DATA-PLANE], cpu: 2, memory: 32Gi, disk: 100Gi}]}]}]
`, lint.RuleNodeSize, lint.Warning},
		{"quorum with two members", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}, {name: n3, pools: [P]}]}]}]
services: [{name: e, kind: etcd, pool: P, replicas: 2}]
`, lint.RuleQuorumReplicas, lint.Error},
		{"even quorum", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}, {name: n3, pools: [P]}, {name: n4, pools: [P]}]}]}]
services: [{name: e, kind: zookeeper, pool: P, replicas: 4}]
`, lint.RuleQuorumEven, lint.Warning},
		{"kafka replication factor 2", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}, {name: n3, pools: [P]}]}]}]
services: [{name: k, kind: kafka, pool: P, replicas: 3, replicationFactor: 2, minInSync: 1}]
`, lint.RuleKafkaRF, lint.Error},
		{"kafka minInSync equal to RF", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}, {name: n3, pools: [P]}]}]}]
services: [{name: k, kind: kafka, pool: P, replicas: 3, minInSync: 3}]
`, lint.RuleKafkaMinISR, lint.Error},
		{"members share a rack while another is free", `
name: x
sites: [{name: a, racks: [
  {name: r1, power: [p1], switches: [s1], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}]},
  {name: r2, power: [p2], switches: [s2], nodes: [{name: n3, pools: [P]}]},
  {name: r3, power: [p3], switches: [s3], nodes: [{name: n4, pools: [P]}]}]}]
services: [{name: m, kind: mysql, pool: P, placement: [n1, n2, n3]}]
`, lint.RuleSharedRack, lint.Warning},
		{"members share a feed while another is free", `
name: x
sites: [{name: a, racks: [
  {name: r1, power: [p1], switches: [s1], nodes: [{name: n1, pools: [P]}]},
  {name: r2, power: [p1], switches: [s2], nodes: [{name: n2, pools: [P]}]},
  {name: r3, power: [p3], switches: [s3], nodes: [{name: n3, pools: [P]}]},
  {name: r4, power: [p4], switches: [s4], nodes: [{name: n4, pools: [P]}]}]}]
services: [{name: m, kind: mysql, pool: P, placement: [n1, n2, n3]}]
`, lint.RuleSharedFeed, lint.Warning},
		{"members share a switch while another is free", `
name: x
sites: [{name: a, racks: [
  {name: r1, power: [p1], switches: [s1], nodes: [{name: n1, pools: [P]}]},
  {name: r2, power: [p2], switches: [s1], nodes: [{name: n2, pools: [P]}]},
  {name: r3, power: [p3], switches: [s3], nodes: [{name: n3, pools: [P]}]},
  {name: r4, power: [p4], switches: [s4], nodes: [{name: n4, pools: [P]}]}]}]
services: [{name: m, kind: mysql, pool: P, placement: [n1, n2, n3]}]
`, lint.RuleSharedSwitch, lint.Warning},
		{"never-merge pool shares a node", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [KAFKA-DATA-PLANE, CORE-HANDLERS]}]}]}]
`, lint.RulePoolMerge, lint.Error},
		{"untested combination", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [QUOTING-SERVICE, CORE-HANDLERS]}]}]}]
`, lint.RulePoolMergeUntried, lint.Warning},
		{"site holds a quorum majority", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [p1], switches: [s1], nodes: [{name: n1, pools: [P]}]}, {name: r2, power: [p2], switches: [s2], nodes: [{name: n2, pools: [P]}]}]}
  - {name: b, racks: [{name: r1, power: [p3], switches: [s3], nodes: [{name: n3, pools: [P]}]}]}
services: [{name: e, kind: etcd, pool: P, spread: site}]
`, lint.RuleSiteMajority, lint.Warning},
		{"unknown pool", `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [MY-POOL]}]}]}]
`, lint.RuleUnknownPool, lint.Warning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := rules(check(t, c.yaml))
			require.Contains(t, got, c.rule, "findings: %v", got)
			require.Equal(t, c.sev, got[c.rule])
		})
	}
}

func TestSanctionedCombinationIsNotFlagged(t *testing.T) {
	fs := check(t, `
name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [
  {name: n1, pools: [CENTRAL-LEDGER-SVC, CORE-HANDLERS, CORE-HANDLERS-BULK]},
  {name: n2, pools: [CENTRAL-LEDGER-SVC, CORE-HANDLERS, CORE-HANDLERS-BULK]},
  {name: n3, pools: [CENTRAL-LEDGER-SVC, CORE-HANDLERS, CORE-HANDLERS-BULK]}]}]}]
`)
	require.Empty(t, fs)
}

func TestFindingsAreLocated(t *testing.T) {
	fs := check(t, `name: x
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n1, pools: [P]}, {name: n2, pools: [P]}, {name: n3, pools: [P]}]}]}]
services:
  - {name: e, kind: etcd, pool: P, replicas: 2}
`)
	var f *lint.Finding
	for i := range fs {
		if fs[i].Rule == lint.RuleQuorumReplicas {
			f = &fs[i]
		}
	}
	require.NotNil(t, f)
	require.Equal(t, "t.yaml", f.File)
	require.Equal(t, 4, f.Line)
	require.Equal(t, 46, f.Column, "at the replicas value")
}

// Losing a site, for kafka and redis: the verdict is analyze's for the
// site's power-off, the message says why.
func TestSiteLossKafkaRedis(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // site-majority messages, by substring
	}{
		{"kafka partitions below minInSync (ZooKeeper keeps its majority)", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [K]}, {name: a2, pools: [K]}, {name: az, pools: [Z]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [K]}, {name: b2, pools: [K]}, {name: bz, pools: [Z]}]}]}
  - {name: c, racks: [{name: r1, power: [pc], switches: [sc], nodes: [{name: cz, pools: [Z]}]}]}
services:
  - {name: zk, kind: zookeeper, pool: Z, spread: site}
  - {name: k, kind: kafka, pool: K, replicas: 4, minInSync: 2, partitions: 4}
`, []string{
			"site a holds 2 of the 4 members of kafka service k: losing that site makes it read-only (partitions 0, 2 keep fewer than minInSync 2 replicas elsewhere)",
			"site b holds 2 of the 4 members of kafka service k: losing that site makes it read-only (partitions 1, 3 keep fewer than minInSync 2 replicas elsewhere)",
		}},
		{"kafka KRaft controllers lose their majority", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa1], switches: [sa1], nodes: [{name: a1, pools: [K]}]}, {name: r2, power: [pa2], switches: [sa2], nodes: [{name: a2, pools: [K]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [K]}]}]}
services:
  - {name: k, kind: kafka, pool: K, spread: site, minInSync: 1, partitions: 3}
`, []string{"site a holds 2 of the 3 members of kafka service k: losing that site makes it down (partitions 0, 1 are led from there and its KRaft controllers keep 1 of 3 members elsewhere, no majority to move leaders)"}},
		{"kafka follower on a site holding ZooKeeper's majority", `
name: x
sites:
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [K]}, {name: bz, pools: [Z]}]}]}
  - {name: c, racks: [{name: r1, power: [pc], switches: [sc], nodes: [{name: c1, pools: [K]}]}]}
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [K]}, {name: az1, pools: [Z]}, {name: az2, pools: [Z]}]}]}
services:
  - {name: zk, kind: zookeeper, pool: Z, placement: [az1, az2, bz]}
  - {name: k, kind: kafka, pool: K, placement: [b1, c1, a1], partitions: 1}
`, []string{
			"site a holds 1 of the 3 members of kafka service k: losing that site makes it read-only (partition 0 has a follower there that acks=all writes wait on, and its ZooKeeper service zk keeps 1 of 3 members elsewhere, no majority to move leaders or shrink in-sync replica sets)",
		}},
		{"kafka with every replica on one site", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [K]}, {name: a2, pools: [K]}, {name: a3, pools: [K]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [Z]}]}]}
services:
  - {name: k, kind: kafka, pool: K, partitions: 1}
`, []string{"site a holds 3 of the 3 members of kafka service k: losing that site makes it down (partition 0 has every replica there)"}},
		{"redis primary's site holds the Sentinel majority", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [C]}, {name: a2, pools: [C]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [C]}]}]}
services:
  - {name: cache, kind: redis, pool: C, placement: [a1, b1, a2]}
`, []string{"site a holds 2 of the 3 members of redis service cache: losing that site makes it down (the primary, member 0, is there and the other sites hold 1 of the 3 members: no Sentinel majority to fail over)"}},
		{"redis primary on the minority site keeps writing", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [C]}, {name: a2, pools: [C]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [C]}]}]}
services:
  - {name: cache, kind: redis, pool: C, placement: [b1, a1, a2]}
`, nil},
		{"redis and kafka one member per site", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [C]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [C]}]}]}
  - {name: c, racks: [{name: r1, power: [pc], switches: [sc], nodes: [{name: c1, pools: [C]}]}]}
services:
  - {name: cache, kind: redis, pool: C, spread: site}
  - {name: k, kind: kafka, pool: C, spread: site}
`, nil},
		{"a transit site: the others are cut apart", `
name: x
sites:
  - {name: a, racks: [{name: r1, power: [pa], switches: [sa], nodes: [{name: a1, pools: [C]}]}]}
  - {name: b, racks: [{name: r1, power: [pb], switches: [sb], nodes: [{name: b1, pools: [C]}]}]}
  - {name: c, racks: [{name: r1, power: [pc], switches: [sc], nodes: [{name: c1, pools: [C]}]}]}
links: [{between: [a, b]}, {between: [b, c]}]
services:
  - {name: cache, kind: redis, pool: C, placement: [b1, a1, c1]}
`, []string{"site b holds 1 of the 3 members of redis service cache: losing that site makes it down (the primary, member 0, is there and the other sites hold 2 of the 3 members: no Sentinel majority to fail over)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, f := range check(t, c.yaml) {
				if f.Rule == lint.RuleSiteMajority && !strings.HasSuffix(f.Message, "loses quorum") {
					require.Equal(t, lint.Warning, f.Severity)
					got = append(got, f.Message)
				}
			}
			require.Equal(t, c.want, got)
		})
	}
}

// two-site.yaml's comment says validate warns that losing the primary site
// takes kafka and redis down, as analyze shows.
func TestTwoSiteWarnsKafkaAndRedis(t *testing.T) {
	sc, err := scenarios.Parse("../../scenarios/two-site.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	var got []string
	for _, f := range lint.Check(topo) {
		if f.Rule == lint.RuleSiteMajority {
			got = append(got, f.Message)
		}
	}
	require.Len(t, got, 5, "%q", got)
	for i, svc := range []string{"etcd service k3s-etcd", "kafka service kafka", "mysql service central-ledger-db", "mongodb service bulk-db", "redis service cache"} {
		require.Contains(t, got[i], "site primary holds 2 of the 3 members of "+svc)
	}
	require.Contains(t, got[1], "makes it down")
	require.Contains(t, got[4], "makes it down")
}

func TestCheckContextCancelled(t *testing.T) {
	s, err := scenarios.Decode("t.yaml", []byte(good))
	require.NoError(t, err)
	topo, err := topology.Build(s.WithDefaults())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = lint.CheckContext(ctx, topo)
	require.ErrorIs(t, err, context.Canceled)
}
