package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
)

// desiredPorts maps every switch-side port to whether it should be up, from
// the recorded faults. Cutting on the switch side makes the far end (host or
// router) see carrier loss, so its routes through that port fall out of use
// (ignore_routes_with_linkdown) and come back when the port is up again.
func (l *Lab) desiredPorts() map[string]bool {
	st := l.st
	p := &st.Plan
	m := map[string]bool{}
	for _, h := range p.Hosts {
		nodeUp := !st.isolated(target(scenarios.TargetNode, h.Node)) && !st.off(h.Node)
		for _, port := range h.Ports {
			m[port.Port] = nodeUp && !st.isolated(target(scenarios.TargetSwitch, port.Switch))
		}
	}
	for _, b := range p.Bridges {
		m[b.Uplink] = !st.isolated(target(scenarios.TargetSwitch, b.Switch)) &&
			!st.isolated(scenarios.Target{Kind: scenarios.TargetRack, Site: b.Site, Name: b.Rack}.String())
	}
	for _, lk := range p.Links {
		up := l.linkWorks(&lk)
		m[lk.PortA], m[lk.PortB] = up, up
	}
	return m
}

func target(kind, name string) string { return scenarios.Target{Kind: kind, Name: name}.String() }

// linkWorks: a WAN link carries traffic unless it or one of its sites is
// isolated ("an isolated site has no working link") or the router at either
// end has no power (a dark site transits nothing).
func (l *Lab) linkWorks(lk *LinkPlan) bool {
	st := l.st
	return !st.isolated(scenarios.Target{Kind: scenarios.TargetLink, A: lk.A, B: lk.B}.String()) &&
		!st.isolated(target(scenarios.TargetSite, lk.A)) &&
		!st.isolated(target(scenarios.TargetSite, lk.B)) &&
		!st.dark(lk.A) && !st.dark(lk.B)
}

// nextHops returns, for each site reachable from src over working links,
// the first link of a lowest-latency path (ties: fewer hops, then link
// order). This stands in for a routing protocol: it is recomputed and
// installed on every change, so traffic transits third sites and reroutes
// around cut links.
func (l *Lab) nextHops(src string) map[string]*LinkPlan {
	p := &l.st.Plan
	type entry struct {
		cost  time.Duration
		hops  int
		first *LinkPlan
	}
	best := map[string]entry{src: {}}
	done := map[string]bool{}
	for {
		// Pick the cheapest undone site (sites are few).
		cur, found := "", false
		for _, r := range p.Routers {
			e, ok := best[r.Site]
			if !ok || done[r.Site] {
				continue
			}
			if !found || e.cost < best[cur].cost || (e.cost == best[cur].cost && e.hops < best[cur].hops) {
				cur, found = r.Site, true
			}
		}
		if !found {
			break
		}
		done[cur] = true
		for i := range p.Links {
			lk := &p.Links[i]
			if !l.linkWorks(lk) {
				continue
			}
			var next string
			switch cur {
			case lk.A:
				next = lk.B
			case lk.B:
				next = lk.A
			default:
				continue
			}
			if done[next] {
				continue
			}
			e := entry{cost: best[cur].cost + lk.Latency, hops: best[cur].hops + 1, first: best[cur].first}
			if cur == src {
				e.first = lk
			}
			old, seen := best[next]
			if !seen || e.cost < old.cost || (e.cost == old.cost && e.hops < old.hops) {
				best[next] = e
			}
		}
	}
	out := map[string]*LinkPlan{}
	for site, e := range best {
		if site != src {
			out[site] = e.first
		}
	}
	return out
}

// wanRoutes are the route commands of site's router for every other site's
// racks: via the next hop's router, or a blackhole when unreachable (a cut
// WAN drops packets silently, as a partition does).
func (l *Lab) wanRoutes(site string) []string {
	p := &l.st.Plan
	hops := l.nextHops(site)
	self, _ := p.router(site)
	route := func(dst netip.Prefix, dstSite string) string {
		lk, ok := hops[dstSite]
		if !ok {
			return fmt.Sprintf("route replace blackhole %s", dst)
		}
		peer := lk.A
		if peer == site {
			peer = lk.B
		}
		pr, _ := p.router(peer)
		return fmt.Sprintf("route replace %s via %s dev %s onlink src %s", dst, pr.Addr, lk.Dev, self.Addr)
	}
	var cmds []string
	seen := map[string]bool{}
	for _, b := range p.Bridges {
		if b.Site == site || seen[b.Subnet.String()] {
			continue
		}
		seen[b.Subnet.String()] = true
		cmds = append(cmds, route(b.Subnet, b.Site))
	}
	// prefixes routed to hosts go where their host's rack does
	for _, h := range p.Hosts {
		if h.Site == site {
			continue
		}
		for _, pr := range h.Routed {
			cmds = append(cmds, route(pr, h.Site))
		}
	}
	return cmds
}

// apply brings the kernel in line with the recorded faults: switch ports
// first (one batch for the changed ones), then every router's WAN routes.
func (l *Lab) apply(ctx context.Context) error {
	p := &l.st.Plan
	cur, err := links(ctx, p.SwitchNS)
	if err != nil {
		return err
	}
	var sw []string
	want := l.desiredPorts()
	for _, port := range slices.Sorted(mapsKeys(want)) {
		d, ok := cur[port]
		if !ok {
			if p.adoptedPort(port) {
				continue // its host is not attached: AttachHost sets it
			}
			return fmt.Errorf("port %s missing in %s (run Up to repair)", port, p.SwitchNS)
		}
		if d.adminUp() != want[port] {
			sw = append(sw, "link set dev "+port+" "+upDown(want[port]))
		}
	}
	if err := ipBatch(ctx, p.SwitchNS, sw); err != nil {
		return err
	}
	batches := map[string][]string{}
	for _, r := range p.Routers {
		batches[r.NetNS] = l.wanRoutes(r.Site)
	}
	return runBatches(ctx, batches)
}

// checkTarget refuses targets that isolate cannot take or that name nothing.
func (l *Lab) checkTarget(t scenarios.Target) error {
	p := &l.st.Plan
	ok := false
	switch t.Kind {
	case scenarios.TargetNode:
		_, ok = p.host(t.Name)
	case scenarios.TargetRack:
		ok = p.hasRack(t.Site, t.Name)
	case scenarios.TargetSwitch:
		ok = p.hasSwitch(t.Name)
	case scenarios.TargetSite:
		_, ok = p.router(t.Name)
	case scenarios.TargetLink:
		_, ok = p.link(t.A, t.B)
	default:
		return fmt.Errorf("netlab: cannot isolate a %s target (%s)", t.Kind, t)
	}
	if !ok {
		return fmt.Errorf("netlab: %s is not in lab %s", t, p.Lab)
	}
	return nil
}

// Isolate cuts a node, rack, switch, site or link off the network
// (section 2 of the spec): processes keep running. Isolating a node cuts
// every port of it; a switch, every port of its bridges (for every rack it
// serves); a rack, its uplinks to the site router (its nodes still reach
// each other); a site, every WAN link of it; a link, that link.
func (l *Lab) Isolate(ctx context.Context, t scenarios.Target) error {
	return l.setIsolated(ctx, t, true)
}

// Heal undoes Isolate of the same target. Other faults stay in force.
func (l *Lab) Heal(ctx context.Context, t scenarios.Target) error {
	return l.setIsolated(ctx, t, false)
}

func (l *Lab) setIsolated(ctx context.Context, t scenarios.Target, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkTarget(t); err != nil {
		return err
	}
	if on {
		l.st.Isolated = addTo(l.st.Isolated, t.String())
	} else {
		l.st.Isolated = removeFrom(l.st.Isolated, t.String())
	}
	// Record first: if applying fails half-way, Up or the next change
	// brings the kernel to the recorded state.
	if err := l.st.write(); err != nil {
		return err
	}
	if err := l.apply(ctx); err != nil {
		return fmt.Errorf("netlab: %s %s: %w", map[bool]string{true: "isolate", false: "heal"}[on], t, err)
	}
	l.log.Info("network fault", "lab", l.st.Plan.Lab, "target", t.String(), "isolated", on)
	return nil
}

// IsolatePath and HealPath take a target path such as "switch/dc1-tor-1".
func (l *Lab) IsolatePath(ctx context.Context, path string) error {
	t, err := scenarios.ParseTarget(path)
	if err != nil {
		return err
	}
	return l.Isolate(ctx, t)
}

// HealPath undoes IsolatePath.
func (l *Lab) HealPath(ctx context.Context, path string) error {
	t, err := scenarios.ParseTarget(path)
	if err != nil {
		return err
	}
	return l.Heal(ctx, t)
}

// HealAll clears every isolation and latency/loss rule, thaws frozen
// nodes and marks powered-off nodes and site routers on (their engines stay
// to be restarted by the caller).
func (l *Lab) HealAll(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Isolated, l.st.Off, l.st.DarkRouters = nil, nil, nil
	var errs []error
	for _, node := range slices.Clone(l.st.Frozen) {
		if err := l.setFrozen(ctx, node, false); err != nil {
			errs = append(errs, err)
		}
	}
	for _, rs := range slices.Clone(l.st.Rules) {
		if err := l.removeRuleSet(ctx, rs.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.st.write(); err != nil {
		return err
	}
	if err := l.apply(ctx); err != nil {
		errs = append(errs, err)
	}
	return joinErrs("heal all", errs)
}
