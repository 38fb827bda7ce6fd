package lint_test

import (
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
