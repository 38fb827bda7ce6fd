package initcmd

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology/pools"
)

var label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// layout is the planned estate: racks in site order, each with its nodes'
// pools, and one service per pool.
type layout struct {
	sites    []string
	racks    [][]rack // per site
	pools    []*pools.Pool
	services []string // per pool
	nodes    int
}

type rack struct {
	name  string
	nodes []*pools.Pool // one pool per node: none of them is merged
}

func (o Options) check() error {
	switch {
	case !label.MatchString(o.Name):
		return cli.Usagef("--name %q is not a DNS label (a-z, 0-9 and -, at most 63 characters)", o.Name)
	case o.Sites < 1 || o.Sites > maxSites:
		return cli.Usagef("--sites must be 1 to %d, not %d", maxSites, o.Sites)
	case o.RacksPerSite < 1 || o.RacksPerSite > maxRacks:
		return cli.Usagef("--racks-per-site must be 1 to %d, not %d", maxRacks, o.RacksPerSite)
	case o.NodesPerRack < 0 || o.Sites*o.RacksPerSite*o.NodesPerRack > maxNodes:
		return cli.Usagef("--nodes-per-rack must be 0 to %d for %d racks, not %d", maxNodes/(o.Sites*o.RacksPerSite), o.Sites*o.RacksPerSite, o.NodesPerRack)
	}
	return nil
}

// plan sizes the pools and places their nodes: each pool gets the seed's
// Initial node count (more when --nodes-per-rack leaves room), and its
// nodes go to distinct sites first, then distinct racks, then the rack
// with the most room.
func plan(o Options) (*layout, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	ps, err := selectPools(o.Pools)
	if err != nil {
		return nil, err
	}
	racks := o.Sites * o.RacksPerSite
	counts := make([]int, len(ps))
	need := 0
	for i, p := range ps {
		counts[i] = max(p.Initial.Nodes, 3)
		need += counts[i]
	}
	perRack := o.NodesPerRack
	if perRack == 0 {
		perRack = (need + racks - 1) / racks
	}
	total := racks * perRack
	if total < need {
		return nil, cli.Usagef("--nodes-per-rack %d gives %d nodes; the %d pools need at least %d (--nodes-per-rack %d)", perRack, total, len(ps), need, (need+racks-1)/racks)
	}
	if total > maxNodes {
		return nil, cli.Usagef("%d nodes are more than init lays out (%d): fewer pools or racks", total, maxNodes)
	}
	for i := 0; need < total; i = (i + 1) % len(ps) {
		counts[i]++
		need++
	}
	l := &layout{pools: ps, nodes: total}
	for s := range o.Sites {
		l.sites = append(l.sites, fmt.Sprintf("dc%d", s+1))
		var rs []rack
		for r := range o.RacksPerSite {
			rs = append(rs, rack{name: fmt.Sprintf("r%d", r+1)})
		}
		l.racks = append(l.racks, rs)
	}
	for i, p := range ps {
		l.place(p, counts[i], perRack)
	}
	l.nameServices()
	return l, nil
}

// place puts n nodes of pool p into racks with room, spreading them.
func (l *layout) place(p *pools.Pool, n, perRack int) {
	sitesUsed := map[int]int{}
	racksUsed := map[[2]int]int{}
	for range n {
		best, bestScore := [2]int{-1, -1}, [3]int{}
		for s := range l.racks {
			for r := range l.racks[s] {
				room := perRack - len(l.racks[s][r].nodes)
				if room == 0 {
					continue
				}
				score := [3]int{sitesUsed[s], racksUsed[[2]int{s, r}], -room}
				if best[0] < 0 || less(score, bestScore) {
					best, bestScore = [2]int{s, r}, score
				}
			}
		}
		s, r := best[0], best[1]
		l.racks[s][r].nodes = append(l.racks[s][r].nodes, p)
		sitesUsed[s]++
		racksUsed[best]++
	}
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// nameServices names each pool's service after the seed's only service
// in it (kafka, central-ledger-db), else after the pool.
func (l *layout) nameServices() {
	seen := map[string]bool{}
	for _, p := range l.pools {
		name := strings.ToLower(p.Name)
		if len(p.Services) == 1 && label.MatchString(p.Services[0]) && !seen[p.Services[0]] {
			name = p.Services[0]
		}
		seen[name] = true
		l.services = append(l.services, name)
	}
}

// gb writes the seed's "32GB" as a quantity the scenario format takes and
// the seed's reading (decimal gigabytes) meets.
func gb(s string) string { return strings.TrimSuffix(s, "B") }

func write(w io.Writer, o Options, l *layout) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# %s: a starter scenario written by
#   chaosloop init --name %s --sites %d --racks-per-site %d --nodes-per-rack %d --pools %s
# Edit it to match the deployment you plan, then:
#   chaosloop validate FILE    # every structural problem, then the seed's deployment lint
#   chaosloop analyze FILE     # which services survive each rack, feed, switch, site failure
#   sudo chaosloop run FILE    # stand it up as a lab, drive load, inject the faults below
# Format: docs/scenario.md ('chaosloop schema' gives editors a JSON Schema).
name: %s
description: %d site(s) of %d rack(s), %d nodes, %d pool(s) of the seed.

sites:
`, o.Name, o.Name, o.Sites, o.RacksPerSite, l.nodes/(o.Sites*o.RacksPerSite), strings.Join(o.Pools, ","), o.Name, o.Sites, o.RacksPerSite, l.nodes, len(l.pools))
	for s, site := range l.sites {
		fmt.Fprintf(&b, "  - name: %s\n    racks:\n", site)
		for i, r := range l.racks[s] {
			id := site + "-" + r.name
			fmt.Fprintf(&b, "      - name: %s\n", r.name)
			if s == 0 && i == 0 {
				b.WriteString("        # Two power feeds (losing one powers nothing off) and a top-of-rack\n" +
					"        # switch of its own; a feed or switch may serve several racks of a site.\n")
			}
			fmt.Fprintf(&b, "        power: [%s-pdu-a, %s-pdu-b]\n", id, id)
			fmt.Fprintf(&b, "        switches: [%s-tor]\n", id)
			if s == 0 && i == 0 {
				b.WriteString("        # One pool per node, sized as the seed's Initial size of the pool.\n")
			}
			b.WriteString("        nodes:\n")
			for k, p := range r.nodes {
				fmt.Fprintf(&b, "          - {name: %s-n%d, pools: [%s], cpu: %g, memory: %s, disk: %s}\n",
					id, k+1, p.Name, p.Initial.CPU, gb(p.Initial.Memory), gb(p.Initial.Disk))
			}
		}
	}
	writeServices(&b, o, l)
	writeRun(&b, l)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeServices(b *strings.Builder, o Options, l *layout) {
	spread := "rack"
	if o.Sites >= 3 {
		spread = "site"
	}
	b.WriteString(`
# WAN links between sites: omitted means a full mesh at 1ms. For example:
# links:
#   - {between: [dc1, dc2], latency: 2ms}

# One service per pool, three members, placed on the pool's nodes over as
# many distinct ` + spread + `s as the layout has.
services:
`)
	for i, p := range l.pools {
		fmt.Fprintf(b, "  - {name: %s, kind: %s, replicas: 3, pool: %s, spread: %s", l.services[i], p.Kind, p.Name, spread)
		switch {
		case p.Kind == scenarios.KindMySQL && p.Replication != "":
			fmt.Fprintf(b, ", replication: %s", p.Replication)
		case p.Kind == scenarios.KindKafka:
			b.WriteString(", replicationFactor: 3, minInSync: 2")
		}
		b.WriteString("}\n")
	}
}

// writeRun adds what `run` needs beyond the topology: load, one fault on
// the first rack, and the expectations it is scored against.
func writeRun(b *strings.Builder, l *layout) {
	fmt.Fprintf(b, `
# What 'chaosloop run' drives and injects (analyze and validate ignore it).
load:
  rate: 100          # transfers per second offered
  duration: 3m       # measured time after warmup; fault offsets count from its start
  warmup: 20s
  participants: 8    # simulated DFSPs

faults:
  - {at: 40s, for: 40s, action: power-off, target: rack/%s/%s}

expect:
  quorum: held       # every quorum service keeps a majority
  acknowledgedLoss: 0
`, l.sites[0], l.racks[0][0].name)
}
