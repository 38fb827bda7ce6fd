package chaosmesh

import (
	"slices"

	"github.com/chaosloop/chaosloop/topology"
)

// effect is what a power or network fault does to the scenario's nodes,
// as the lab and analyze judge it (spec sections 2 and 4).
type effect struct {
	// down are the nodes without power, sorted.
	down []string
	// groups are the nodes still up, by network component, the largest
	// first (ties: the component of the node first in the file); one group
	// when nothing is cut off.
	groups [][]string
}

// effectOf resolves f alone on t: a feed takes a rack down only with every
// other feed of the rack, a switch cuts a rack off only with every other
// switch, a link cut partitions nothing while traffic can transit a third
// site.
func effectOf(t *topology.Topology, f topology.Fault) (effect, error) {
	st := topology.NewState(t)
	if err := st.Apply(f); err != nil {
		return effect{}, err
	}
	var e effect
	index := map[int32]int{}
	for _, n := range t.Nodes {
		if !st.Up(n) {
			e.down = append(e.down, n.Name)
			continue
		}
		c := st.Component(n)
		i, ok := index[c]
		if !ok {
			i = len(e.groups)
			index[c] = i
			e.groups = append(e.groups, nil)
		}
		e.groups[i] = append(e.groups[i], n.Name)
	}
	slices.Sort(e.down)
	// stable: ties keep file order
	slices.SortStableFunc(e.groups, func(a, b []string) int { return len(b) - len(a) })
	return e, nil
}

// cutOff pairs each group but the largest with every other up node: the
// partitions that reproduce the split (every pair of groups is then
// parted, as one side of each pair is not the largest).
func (e effect) cutOff() (pairs [][2][]string) {
	for i, g := range e.groups {
		if i == 0 {
			continue
		}
		var rest []string
		for j, o := range e.groups {
			if j != i {
				rest = append(rest, o...)
			}
		}
		slices.Sort(rest)
		pairs = append(pairs, [2][]string{slices.Sorted(slices.Values(g)), rest})
	}
	return pairs
}
