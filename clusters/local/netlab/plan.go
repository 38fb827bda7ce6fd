// Package netlab builds the local lab's network from a scenario: one network
// namespace per node ("host"), one per site router, and one "switch"
// namespace holding every bridge, so that each failure of the spec's network
// model (section 4 of shared/spec/scenario.md) is a real state of the kernel:
// a cut is a bridge port set down on the switch side, which the far end sees
// as carrier loss, and the kernel then ignores the routes through it.
//
// Everything the lab creates is recorded in a JSON state file, so that a
// later process (after chaosloop crashed) can repair or remove it.
package netlab

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Address plan, all inside 198.18.0.0/15 (RFC 2544 benchmarking space):
// 198.18.0.S+1 is site S's router; rack R (1-based over the whole scenario)
// owns the /24 at 198.18.0.0 + R*256 and its n-th node is .10+n.
var (
	labPrefix = netip.MustParsePrefix("198.18.0.0/15")
	routerNet = netip.MustParsePrefix("198.18.0.0/24")
)

// LabPrefix is the address space of every lab: every host routes it
// over its ports.
func LabPrefix() netip.Prefix { return labPrefix }

const (
	maxRacks        = 511 // /24s in the /15 after the router /24
	maxSites        = 250
	maxHostsPerRack = 240
	hostOffset      = 10
)

// HostPlan is one node's host: its namespace, address and ports.
type HostPlan struct {
	Node  string `json:"node"`
	Site  string `json:"site"`
	Rack  string `json:"rack"`
	NetNS string `json:"netns"`
	// Addr is the host's only address (a /32 on lo, reachable over every
	// port); Gateway is its site router's address.
	Addr    netip.Addr `json:"addr"`
	Gateway netip.Addr `json:"gateway"`
	// Subnet is the rack's /24, reached directly over the rack's switches.
	Subnet netip.Prefix `json:"subnet"`
	// CgroupName is the node's directory under the lab's cgroup.
	CgroupName string     `json:"cgroupName"`
	Ports      []HostPort `json:"ports"`
	// Adopted: the namespace is another's (a container's), named and
	// wired by AttachHost, never created, emptied or killed by the lab.
	Adopted bool `json:"adopted,omitempty"`
	// Routed are extra prefixes routed to this host (its pods).
	Routed []netip.Prefix `json:"routed,omitempty"`
}

// HostPort is one veth of a host, plugged into one switch's bridge for its rack.
type HostPort struct {
	Switch string `json:"switch"`
	// Dev is the host end (eth0, eth1, ...), Port the switch end.
	Dev    string `json:"dev"`
	Port   string `json:"port"`
	Bridge string `json:"bridge"`
	Metric int    `json:"metric"`
}

// BridgePlan is one (rack, switch) pair: a bridge in the switch namespace
// joining the rack's hosts' ports for that switch and an uplink to the site
// router. A switch serving several racks is several bridges, so that
// isolating one rack can cut its uplinks without touching the other racks.
type BridgePlan struct {
	Site   string       `json:"site"`
	Rack   string       `json:"rack"`
	Switch string       `json:"switch"`
	Bridge string       `json:"bridge"`
	Subnet netip.Prefix `json:"subnet"`
	// Uplink is the switch-side port to the router, RouterDev its router end.
	Uplink    string `json:"uplink"`
	RouterDev string `json:"routerDev"`
	Metric    int    `json:"metric"`
}

// RouterPlan is a site router.
type RouterPlan struct {
	Site  string     `json:"site"`
	NetNS string     `json:"netns"`
	Addr  netip.Addr `json:"addr"`
}

// LinkPlan is a WAN link: two router devices joined through a bridge in the
// switch namespace, so that it is cut on the switch side.
type LinkPlan struct {
	A       string        `json:"a"`
	B       string        `json:"b"`
	Latency time.Duration `json:"latency"`
	// Dev is the device name in both routers; PortA/PortB the switch ends.
	Dev    string `json:"dev"`
	Bridge string `json:"bridge"`
	PortA  string `json:"portA"`
	PortB  string `json:"portB"`
}

// Plan is the whole network layout; it depends only on the scenario (and
// the Options).
type Plan struct {
	Lab string `json:"lab"`
	// NSPrefix replaces the package's NSPrefix in namespace names.
	NSPrefix string       `json:"nsPrefix,omitempty"`
	SwitchNS string       `json:"switchNS"`
	Hosts    []HostPlan   `json:"hosts"`
	Bridges  []BridgePlan `json:"bridges"`
	Routers  []RouterPlan `json:"routers"`
	Links    []LinkPlan   `json:"links"`
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$`)

// NSPrefix is the prefix of every namespace chaosloop creates.
const NSPrefix = "cl-"

// nsBase is the prefix of one lab's namespaces. Lab names match [a-z0-9-]+,
// so the '.' after them keeps two labs' namespaces apart.
func nsBase(lab string) string { return NSPrefix + lab + "." }

// base is the prefix of the plan's namespaces.
func (p *Plan) base() string {
	if p.NSPrefix == "" {
		return nsBase(p.Lab)
	}
	return p.NSPrefix + p.Lab + "."
}

// Options are how a lab differs from the local one; the zero value is the
// local lab.
type Options struct {
	// NSPrefix replaces NSPrefix ("cl-") in namespace names, so that labs
	// of another backend never share names with local ones (nor are swept
	// by DownAll). It must match [a-z][a-z0-9]*-.
	NSPrefix string
	// Adopt makes every host an existing network namespace (a container's)
	// that AttachHost names and wires; Up builds only the switches,
	// routers and links, and no cgroups. Adopted hosts' ports are named
	// lab0, lab1, ... (eth0 is the container's own).
	Adopt bool
	// Routed are extra prefixes routed to a node's host, by node name (a
	// node's pod addresses): inside 198.18.0.0/15, clear of the address
	// plan. Hosts of the same rack reach them directly, the site routers
	// route them like the racks' subnets.
	Routed map[string][]netip.Prefix
}

var nsPrefixRE = regexp.MustCompile(`^[a-z][a-z0-9]*-$`)

// component names a node or site in a namespace or cgroup name: the name
// itself when it is safe as a file name, else its index.
func component(kind string, i int, name string) string {
	if safeName.MatchString(name) {
		return name
	}
	return fmt.Sprintf("%s%d", kind, i)
}

// NewPlan lays out the network of a defaulted, validated scenario.
func NewPlan(sc *scenarios.Scenario) (*Plan, error) { return NewPlanWith(sc, Options{}) }

// NewPlanWith is NewPlan for a lab with options.
func NewPlanWith(sc *scenarios.Scenario, o Options) (*Plan, error) {
	if !regexp.MustCompile(`^[a-z0-9-]{1,64}$`).MatchString(sc.Name) {
		return nil, fmt.Errorf("netlab: lab name %q must match [a-z0-9-]{1,64}", sc.Name)
	}
	if o.NSPrefix != "" && !nsPrefixRE.MatchString(o.NSPrefix) {
		return nil, fmt.Errorf("netlab: namespace prefix %q must match %s", o.NSPrefix, nsPrefixRE)
	}
	if len(sc.Sites) > maxSites {
		return nil, fmt.Errorf("netlab: %d sites, at most %d fit the address plan", len(sc.Sites), maxSites)
	}
	p := &Plan{Lab: sc.Name, NSPrefix: o.NSPrefix}
	base := p.base()
	p.SwitchNS = base + "sw"
	devPrefix := "eth"
	if o.Adopt {
		devPrefix = "lab"
	}
	siteIdx := map[string]int{}
	rackNo, hostNo := 0, 0
	for si, site := range sc.Sites {
		siteIdx[site.Name] = si
		r := RouterPlan{
			Site:  site.Name,
			NetNS: base + "r." + component("s", si, site.Name),
			Addr:  netip.AddrFrom4([4]byte{198, 18, 0, byte(si + 1)}),
		}
		p.Routers = append(p.Routers, r)
		for _, rack := range site.Racks {
			rackNo++
			if rackNo > maxRacks {
				return nil, fmt.Errorf("netlab: more than %d racks do not fit the address plan", maxRacks)
			}
			if len(rack.Nodes) > maxHostsPerRack {
				return nil, fmt.Errorf("netlab: rack %s/%s has %d nodes, at most %d fit the address plan", site.Name, rack.Name, len(rack.Nodes), maxHostsPerRack)
			}
			netBase := 198<<24 | 18<<16 | uint32(rackNo)<<8
			subnet := netip.PrefixFrom(addr4(netBase), 24)
			var bridges []BridgePlan
			for k, sw := range rack.Switches {
				bi := len(p.Bridges) + len(bridges)
				bridges = append(bridges, BridgePlan{
					Site: site.Name, Rack: rack.Name, Switch: sw,
					Bridge:    fmt.Sprintf("b%d", bi),
					Subnet:    subnet,
					Uplink:    fmt.Sprintf("u%d", bi),
					RouterDev: fmt.Sprintf("k%d", bi),
					Metric:    100 + k,
				})
			}
			for ni, node := range rack.Nodes {
				h := HostPlan{
					Node: node.Name, Site: site.Name, Rack: rack.Name,
					NetNS:      base + "h." + component("n", hostNo, node.Name),
					CgroupName: component("n", hostNo, node.Name),
					Addr:       addr4(netBase + uint32(hostOffset+ni)),
					Gateway:    r.Addr,
					Subnet:     subnet,
					Adopted:    o.Adopt,
					Routed:     slices.Clone(o.Routed[node.Name]),
				}
				for k, b := range bridges {
					h.Ports = append(h.Ports, HostPort{
						Switch: b.Switch,
						Dev:    fmt.Sprintf("%s%d", devPrefix, k),
						Port:   fmt.Sprintf("h%ds%d", hostNo, k),
						Bridge: b.Bridge,
						Metric: b.Metric,
					})
				}
				p.Hosts = append(p.Hosts, h)
				hostNo++
			}
			p.Bridges = append(p.Bridges, bridges...)
		}
	}
	type pair = [2]string
	var links []scenarios.Link
	if sc.Links == nil {
		// Omitted links mean a full mesh at the default latency.
		for i := range sc.Sites {
			for j := i + 1; j < len(sc.Sites); j++ {
				links = append(links, scenarios.Link{
					Between: []string{sc.Sites[i].Name, sc.Sites[j].Name},
					Latency: &scenarios.Duration{Duration: scenarios.DefaultLinkLatency},
				})
			}
		}
	} else {
		links = sc.Links
	}
	seen := map[pair]bool{}
	for _, l := range links {
		if len(l.Between) != 2 {
			return nil, fmt.Errorf("netlab: link %v does not name two sites", l.Between)
		}
		a, b := l.Between[0], l.Between[1]
		if b < a {
			a, b = b, a
		}
		if _, ok := siteIdx[a]; !ok {
			return nil, fmt.Errorf("netlab: link names unknown site %q", a)
		}
		if _, ok := siteIdx[b]; !ok || a == b || seen[pair{a, b}] {
			return nil, fmt.Errorf("netlab: bad link %s/%s", a, b)
		}
		seen[pair{a, b}] = true
		lat := scenarios.DefaultLinkLatency
		if l.Latency != nil {
			lat = l.Latency.Duration
		}
		i := len(p.Links)
		p.Links = append(p.Links, LinkPlan{
			A: a, B: b, Latency: lat,
			Dev:    fmt.Sprintf("w%d", i),
			Bridge: fmt.Sprintf("wb%d", i),
			PortA:  fmt.Sprintf("wa%d", i),
			PortB:  fmt.Sprintf("wz%d", i),
		})
	}
	if err := p.checkRouted(); err != nil {
		return nil, err
	}
	return p, nil
}

// checkRouted refuses routed prefixes outside the lab's space, or that
// overlap the address plan or each other.
func (p *Plan) checkRouted() error {
	taken := []netip.Prefix{routerNet}
	for _, b := range p.Bridges {
		taken = append(taken, b.Subnet)
	}
	for _, h := range p.Hosts {
		for _, r := range h.Routed {
			if !r.IsValid() || r.Addr().Is6() || !labPrefix.Contains(r.Addr()) || r.Bits() < labPrefix.Bits() {
				return fmt.Errorf("netlab: prefix %s routed to %s is not inside %s", r, h.Node, labPrefix)
			}
			r = r.Masked()
			for _, t := range taken {
				if t.Overlaps(r) {
					return fmt.Errorf("netlab: prefix %s routed to %s overlaps %s of the lab", r, h.Node, t)
				}
			}
			taken = append(taken, r)
		}
	}
	return nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (p *Plan) host(node string) (*HostPlan, bool) {
	for i := range p.Hosts {
		if p.Hosts[i].Node == node {
			return &p.Hosts[i], true
		}
	}
	return nil, false
}

func (p *Plan) router(site string) (*RouterPlan, bool) {
	for i := range p.Routers {
		if p.Routers[i].Site == site {
			return &p.Routers[i], true
		}
	}
	return nil, false
}

func (p *Plan) link(a, b string) (*LinkPlan, bool) {
	if b < a {
		a, b = b, a
	}
	for i := range p.Links {
		if p.Links[i].A == a && p.Links[i].B == b {
			return &p.Links[i], true
		}
	}
	return nil, false
}

// namespaces lists every namespace of the plan.
func (p *Plan) namespaces() []string {
	ns := []string{p.SwitchNS}
	for _, r := range p.Routers {
		ns = append(ns, r.NetNS)
	}
	for _, h := range p.Hosts {
		ns = append(ns, h.NetNS)
	}
	return ns
}

// adoptedPort says whether a switch port belongs to an adopted host.
func (p *Plan) adoptedPort(port string) bool {
	for _, h := range p.Hosts {
		if h.Adopted && slices.ContainsFunc(h.Ports, func(hp HostPort) bool { return hp.Port == port }) {
			return true
		}
	}
	return false
}

func (p *Plan) hasSwitch(sw string) bool {
	return slices.ContainsFunc(p.Bridges, func(b BridgePlan) bool { return b.Switch == sw })
}

func (p *Plan) hasRack(site, rack string) bool {
	return slices.ContainsFunc(p.Bridges, func(b BridgePlan) bool { return b.Site == site && b.Rack == rack })
}
