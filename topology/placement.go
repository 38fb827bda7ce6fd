package topology

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/chaosloop/chaosloop/scenarios"
)

// place puts a service's members on nodes (spec section 3) and, for kafka,
// assigns partition replicas.
func (t *Topology) place(spec *scenarios.Service) (*Service, error) {
	sv := &Service{
		Name: spec.Name, Kind: spec.Kind, Spec: spec,
		Quorum: spec.IsQuorum(),
		Async:  spec.Kind == scenarios.KindMySQL && spec.Replication == scenarios.ReplicationAsync,
	}
	replicas := spec.ReplicaCount()
	if len(spec.Placement) > 0 {
		for _, name := range spec.Placement {
			n := t.nodeByName[name]
			if n == nil || !n.Carries(spec.Pool) {
				return nil, fmt.Errorf("service %s: placement node %q does not carry pool %s", spec.Name, name, spec.Pool)
			}
			sv.Members = append(sv.Members, n)
		}
	} else {
		members, err := t.autoPlace(spec.Pool, spread(spec.Spread), replicas)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", spec.Name, err)
		}
		sv.Members = members
	}
	if spec.Kind == scenarios.KindKafka {
		sv.ReplicationFactor = min(scenarios.DefaultMaxRF, len(sv.Members))
		if spec.ReplicationFactor != nil {
			sv.ReplicationFactor = *spec.ReplicationFactor
		}
		sv.MinInSync = scenarios.DefaultMinInSync
		if spec.MinInSync != nil {
			sv.MinInSync = *spec.MinInSync
		}
		parts := scenarios.DefaultPartitions
		if spec.Partitions != nil {
			parts = *spec.Partitions
		}
		// Validation bounds partitions; this guards the allocation below
		// against a scenario that skipped it (1e18 panics in make, 2e8
		// takes 4.8 GB).
		if parts < 1 || parts > maxPartitions {
			return nil, fmt.Errorf("service %s: %d partitions: at most %d can be modelled", spec.Name, parts, maxPartitions)
		}
		sv.Partitions = assignPartitions(sv.Members, parts, sv.ReplicationFactor)
	}
	return sv, nil
}

// maxPartitions is the most partitions a kafka service's table holds.
const maxPartitions = 1 << 20

type spreadLevel int

const (
	bySite spreadLevel = iota
	byRack
	byNode
)

func spread(s string) spreadLevel {
	switch s {
	case scenarios.SpreadSite:
		return bySite
	case scenarios.SpreadNode:
		return byNode
	}
	return byRack
}

// unitOf returns the index of a node's spread unit.
func unitOf(n *Node, level spreadLevel) int {
	switch level {
	case bySite:
		return n.Rack.Site.Index
	case byRack:
		return n.Rack.Index
	}
	return n.Index
}

// autoPlace places members one at a time, member 0 first: each goes to the
// spread unit holding the fewest members so far that still has a free
// eligible node (ties: file order), and inside it to the free eligible node
// whose rack holds the fewest members (ties: file order).
func (t *Topology) autoPlace(pool string, level spreadLevel, replicas int) ([]*Node, error) {
	eligible := t.PoolNodes(pool)
	if len(eligible) < replicas {
		return nil, fmt.Errorf("needs %d nodes carrying pool %s, only %d do", replicas, pool, len(eligible))
	}
	used := make(map[*Node]bool, replicas)
	unitCount := map[int]int{}
	rackCount := map[int]int{}
	members := make([]*Node, 0, replicas)
	for range replicas {
		// Units in file order are the units of eligible nodes in node order,
		// since nodes are numbered in file order within site and rack.
		bestUnit, bestCount := -1, 0
		for _, n := range eligible {
			if used[n] {
				continue
			}
			u := unitOf(n, level)
			if c := unitCount[u]; bestUnit < 0 || c < bestCount || (c == bestCount && u < bestUnit) {
				bestUnit, bestCount = u, c
			}
		}
		var pick *Node
		for _, n := range eligible {
			if used[n] || unitOf(n, level) != bestUnit {
				continue
			}
			if pick == nil || rackCount[n.Rack.Index] < rackCount[pick.Rack.Index] {
				pick = n
			}
		}
		used[pick] = true
		unitCount[bestUnit]++
		rackCount[pick.Rack.Index]++
		members = append(members, pick)
	}
	return members, nil
}

// assignPartitions orders brokers by alternating racks (the first broker of
// each rack in file order, then the second of each, ...) and gives partition
// p the brokers at positions p..p+rf-1 of that list, modulo the broker count.
// It returns member indexes.
func assignPartitions(members []*Node, partitions, rf int) [][]int {
	if len(members) == 0 {
		return nil
	}
	// Group member indexes by rack, racks in file order, brokers in node
	// (file) order inside each rack.
	byRack := map[int][]int{}
	var racks []int
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(members[a].Index, members[b].Index) })
	for _, i := range order {
		r := members[i].Rack.Index
		if _, ok := byRack[r]; !ok {
			racks = append(racks, r)
		}
		byRack[r] = append(byRack[r], i)
	}
	slices.Sort(racks)
	var list []int
	for k := 0; len(list) < len(members); k++ {
		for _, r := range racks {
			if k < len(byRack[r]) {
				list = append(list, byRack[r][k])
			}
		}
	}
	// Partition p+len(list) has partition p's replicas: the lists repeat,
	// and are shared (read-only) rather than allocated per partition.
	out := make([][]int, partitions)
	for p := range out {
		if p >= len(list) {
			out[p] = out[p%len(list)]
			continue
		}
		reps := make([]int, 0, rf)
		for k := range rf {
			reps = append(reps, list[(p+k)%len(list)])
		}
		out[p] = reps
	}
	return out
}
