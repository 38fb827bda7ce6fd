package topology

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/chaosloop/chaosloop/scenarios"
)

// genScenario makes a random valid scenario: 1-4 sites of 1-4 racks, feeds
// and switches shared between racks or dual, partial or full WAN meshes
// (so that depth 2 pairs site power-offs with link cuts on transit paths),
// every service kind, kafka of up to 8 brokers in KRaft or ZooKeeper mode,
// some explicit placements.
func genScenario(r *rand.Rand) *scenarios.Scenario {
	sc := &scenarios.Scenario{Name: "gen"}
	pools := []string{"P1", "P2", "P3"}
	nSites := 1 + r.IntN(4)
	nodeNo := 0
	for s := range nSites {
		site := scenarios.Site{Name: fmt.Sprintf("s%d", s)}
		nFeeds, nSw := 1+r.IntN(3), 1+r.IntN(3)
		for k := range 1 + r.IntN(4) {
			rack := scenarios.Rack{Name: fmt.Sprintf("r%d", k)}
			rack.Power = pickSome(r, nFeeds, 2, func(i int) string { return fmt.Sprintf("s%d-f%d", s, i) })
			rack.Switches = pickSome(r, nSw, 2, func(i int) string { return fmt.Sprintf("s%d-sw%d", s, i) })
			for range 1 + r.IntN(4) {
				// Names deliberately not in file order, to exercise sorting.
				n := scenarios.Node{Name: fmt.Sprintf("n%d", (nodeNo*7)%50+100*nodeNo%3)}
				n.Name = fmt.Sprintf("%s-%d", n.Name, nodeNo)
				nodeNo++
				n.Pools = pickSome(r, len(pools), 2, func(i int) string { return pools[i] })
				rack.Nodes = append(rack.Nodes, n)
			}
			site.Racks = append(site.Racks, rack)
		}
		sc.Sites = append(sc.Sites, site)
	}
	if nSites > 1 && r.IntN(3) > 0 {
		// A partial mesh, possibly disconnected; at least one link.
		for a := range nSites {
			for b := a + 1; b < nSites; b++ {
				if r.IntN(2) == 0 {
					sc.Links = append(sc.Links, scenarios.Link{Between: []string{fmt.Sprintf("s%d", b), fmt.Sprintf("s%d", a)}})
				}
			}
		}
		if len(sc.Links) == 0 {
			sc.Links = append(sc.Links, scenarios.Link{Between: []string{"s0", "s1"}})
		}
	}
	eligible := map[string][]string{}
	for _, s := range sc.Sites {
		for _, rk := range s.Racks {
			for _, n := range rk.Nodes {
				for _, p := range n.Pools {
					eligible[p] = append(eligible[p], n.Name)
				}
			}
		}
	}
	var usable []string
	for _, p := range pools {
		if len(eligible[p]) > 0 {
			usable = append(usable, p)
		}
	}
	// Kafka and zookeeper twice as likely as the rest: kafka's control
	// plane depends on them.
	kinds := append(slices.Clone(scenarios.Kinds), scenarios.KindKafka, scenarios.KindZookeeper)
	for i := range 1 + r.IntN(6) {
		pool := usable[r.IntN(len(usable))]
		el := eligible[pool]
		sv := scenarios.Service{Name: fmt.Sprintf("svc%d", i), Kind: kinds[r.IntN(len(kinds))], Pool: pool}
		most := 5
		if sv.Kind == scenarios.KindKafka {
			most = 8 // above 5 brokers, KRaft voters are members 0-2
		}
		reps := 1 + r.IntN(min(most, len(el)))
		sv.Replicas = &reps
		sv.Spread = []string{"", scenarios.SpreadSite, scenarios.SpreadRack, scenarios.SpreadNode}[r.IntN(4)]
		if sv.Kind == scenarios.KindMySQL {
			sv.Replication = []string{"", scenarios.ReplicationGroup, scenarios.ReplicationAsync}[r.IntN(3)]
		}
		if sv.Kind == scenarios.KindKafka {
			rf := 1 + r.IntN(reps)
			mis := 1 + r.IntN(3)
			parts := 1 + r.IntN(8)
			sv.ReplicationFactor, sv.MinInSync, sv.Partitions = &rf, &mis, &parts
		}
		if r.IntN(4) == 0 {
			perm := slices.Clone(el)
			r.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
			sv.Placement = perm[:reps]
		}
		sc.Services = append(sc.Services, sv)
	}
	// Kafka runs KRaft, on the only zookeeper service by default, or on a
	// named one (required when there are several).
	var zks []string
	for _, sv := range sc.Services {
		if sv.Kind == scenarios.KindZookeeper {
			zks = append(zks, sv.Name)
		}
	}
	for i := range sc.Services {
		if sv := &sc.Services[i]; sv.Kind == scenarios.KindKafka && len(zks) > 0 && (len(zks) > 1 || r.IntN(2) == 0) {
			sv.Controller = zks[r.IntN(len(zks))]
		}
	}
	return sc.WithDefaults()
}

// pickSome picks 1..most distinct indexes of n, in random order.
func pickSome(r *rand.Rand, n, most int, name func(int) string) []string {
	k := 1 + r.IntN(min(n, most))
	perm := r.Perm(n)[:k]
	out := make([]string, k)
	for i, p := range perm {
		out[i] = name(p)
	}
	return out
}
