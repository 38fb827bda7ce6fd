// Package topology turns a scenario into its physical model — sites, racks,
// power feeds, switches, nodes, WAN links — places each service's members
// (spec section 3), and evaluates failures against the network model and the
// verdict rules (sections 4 and 5).
package topology

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Topology is the physical model of a scenario. Every element has an Index:
// its position in file order, used for fast array-based evaluation.
type Topology struct {
	Name     string
	Sites    []*Site
	Racks    []*Rack
	Nodes    []*Node
	Feeds    []*Feed
	Switches []*Switch
	Links    []*Link
	Services []*Service

	Scenario *scenarios.Scenario

	siteByName    map[string]*Site
	rackByPath    map[string]*Rack
	nodeByName    map[string]*Node
	feedByName    map[string]*Feed
	switchByName  map[string]*Switch
	linkByPath    map[string]*Link
	serviceByName map[string]*Service
}

// Site is a data centre.
type Site struct {
	Index int
	Name  string
	Racks []*Rack
	Links []*Link
}

// Rack holds nodes that share power feeds and switches.
type Rack struct {
	Index    int
	Name     string
	Site     *Site
	Feeds    []*Feed
	Switches []*Switch
	Nodes    []*Node
}

// Path is the rack's target path, rack/SITE/NAME.
func (r *Rack) Path() string { return "rack/" + r.Site.Name + "/" + r.Name }

// Node is one machine.
type Node struct {
	Index int
	Name  string
	Rack  *Rack
	Pools []string
	// CPU in cores, Memory and Disk in bytes; zero when not given.
	CPU    float64
	Memory int64
	Disk   int64
	// HasCPU etc. say whether the size was written in the file.
	HasCPU, HasMemory, HasDisk bool
	// Src is the node's field path in the scenario ("sites[0].racks[1].nodes[2]").
	Src string
}

// Site returns the node's site.
func (n *Node) Site() *Site { return n.Rack.Site }

// Carries reports whether the node carries a pool.
func (n *Node) Carries(pool string) bool { return slices.Contains(n.Pools, pool) }

// Feed is a power feed serving racks of one site.
type Feed struct {
	Index int
	Name  string
	Site  *Site
	Racks []*Rack
}

// Switch is a network switch serving racks of one site.
type Switch struct {
	Index int
	Name  string
	Site  *Site
	Racks []*Rack
}

// Link is a WAN link between two sites; A sorts before B.
type Link struct {
	Index   int
	A, B    *Site
	Latency time.Duration
}

// Path is link/A/B with the sites in sorted order.
func (l *Link) Path() string { return "link/" + l.A.Name + "/" + l.B.Name }

// Service is a placed service.
type Service struct {
	Index int
	Name  string
	Kind  string
	Spec  *scenarios.Service
	// Members[i] is the node of member i.
	Members []*Node
	// Quorum: needs a strict majority of its replicas to write.
	Quorum bool
	// Async: mysql with replication: async (primary + replicas).
	Async bool
	// Kafka only.
	ReplicationFactor, MinInSync int
	// Partitions[p] lists the member indexes holding partition p (read-only:
	// partitions with the same replicas share the slice).
	Partitions [][]int
	// Controller is kafka's control plane (section 5): the nodes of its
	// zookeeper service (ZooKeeper mode, ControllerService set) or of its
	// own controller members (KRaft: every member up to 5, else 0, 1, 2).
	Controller        []*Node
	ControllerService *Service
	// Src is the service's field path in the scenario ("services[3]").
	Src string
}

// Replicas is the configured member count.
func (s *Service) Replicas() int { return len(s.Members) }

// Build makes the model of a defaulted, validated scenario and places its
// services. It fails only on scenarios that Validate would refuse.
func Build(sc *scenarios.Scenario) (*Topology, error) {
	t := &Topology{
		Name: sc.Name, Scenario: sc,
		siteByName: map[string]*Site{}, rackByPath: map[string]*Rack{}, nodeByName: map[string]*Node{},
		feedByName: map[string]*Feed{}, switchByName: map[string]*Switch{}, linkByPath: map[string]*Link{},
		serviceByName: map[string]*Service{},
	}
	for si, ss := range sc.Sites {
		site := &Site{Index: len(t.Sites), Name: ss.Name}
		t.Sites = append(t.Sites, site)
		t.siteByName[site.Name] = site
		for ri, rs := range ss.Racks {
			r := &Rack{Index: len(t.Racks), Name: rs.Name, Site: site}
			t.Racks = append(t.Racks, r)
			site.Racks = append(site.Racks, r)
			t.rackByPath[r.Path()] = r
			for _, f := range rs.Power {
				feed := t.feedByName[f]
				if feed == nil {
					feed = &Feed{Index: len(t.Feeds), Name: f, Site: site}
					t.Feeds = append(t.Feeds, feed)
					t.feedByName[f] = feed
				}
				feed.Racks = append(feed.Racks, r)
				r.Feeds = append(r.Feeds, feed)
			}
			for _, s := range rs.Switches {
				sw := t.switchByName[s]
				if sw == nil {
					sw = &Switch{Index: len(t.Switches), Name: s, Site: site}
					t.Switches = append(t.Switches, sw)
					t.switchByName[s] = sw
				}
				sw.Racks = append(sw.Racks, r)
				r.Switches = append(r.Switches, sw)
			}
			for ni, ns := range rs.Nodes {
				n := &Node{Index: len(t.Nodes), Name: ns.Name, Rack: r, Pools: ns.Pools,
					Src: fmt.Sprintf("sites[%d].racks[%d].nodes[%d]", si, ri, ni)}
				if ns.CPU != nil {
					n.CPU, n.HasCPU = *ns.CPU, true
				}
				if ns.Memory != nil {
					n.Memory, n.HasMemory = ns.Memory.Bytes(), true
				}
				if ns.Disk != nil {
					n.Disk, n.HasDisk = ns.Disk.Bytes(), true
				}
				t.Nodes = append(t.Nodes, n)
				r.Nodes = append(r.Nodes, n)
				t.nodeByName[n.Name] = n
			}
		}
	}
	if err := t.buildLinks(sc); err != nil {
		return nil, err
	}
	for i := range sc.Services {
		sv, err := t.place(&sc.Services[i])
		if err != nil {
			return nil, err
		}
		sv.Index = len(t.Services)
		sv.Src = fmt.Sprintf("services[%d]", i)
		t.Services = append(t.Services, sv)
		t.serviceByName[sv.Name] = sv
	}
	for _, sv := range t.Services {
		if sv.Kind == scenarios.KindKafka {
			if err := t.resolveController(sv); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// kraftVoters is the largest kafka for which every member is a KRaft
// controller; larger ones use members 0, 1 and 2.
const kraftVoters = 5

// resolveController finds a kafka service's control plane: the zookeeper
// service named by controller, else the scenario's only zookeeper service,
// else a KRaft quorum on its own members.
func (t *Topology) resolveController(sv *Service) error {
	zk := t.serviceByName[sv.Spec.Controller]
	if sv.Spec.Controller != "" && (zk == nil || zk.Kind != scenarios.KindZookeeper) {
		return fmt.Errorf("service %q: controller %q is not a zookeeper service", sv.Name, sv.Spec.Controller)
	}
	if zk == nil {
		for _, o := range t.Services {
			if o.Kind != scenarios.KindZookeeper {
				continue
			}
			if zk != nil {
				return fmt.Errorf("service %q: several zookeeper services and no controller", sv.Name)
			}
			zk = o
		}
	}
	if zk != nil {
		sv.ControllerService, sv.Controller = zk, zk.Members
		return nil
	}
	n := len(sv.Members)
	if n > kraftVoters {
		n = 3
	}
	sv.Controller = sv.Members[:n:n]
	return nil
}

func (t *Topology) buildLinks(sc *scenarios.Scenario) error {
	add := func(a, b *Site, lat time.Duration) {
		if b.Name < a.Name {
			a, b = b, a
		}
		l := &Link{Index: len(t.Links), A: a, B: b, Latency: lat}
		t.Links = append(t.Links, l)
		t.linkByPath[l.Path()] = l
		a.Links = append(a.Links, l)
		b.Links = append(b.Links, l)
	}
	if len(sc.Links) == 0 {
		// Omitted links mean a full mesh with 1ms latency.
		for i, a := range t.Sites {
			for _, b := range t.Sites[i+1:] {
				add(a, b, scenarios.DefaultLinkLatency)
			}
		}
		return nil
	}
	for _, l := range sc.Links {
		if len(l.Between) != 2 {
			return fmt.Errorf("link between %v: want two sites", l.Between)
		}
		a, b := t.siteByName[l.Between[0]], t.siteByName[l.Between[1]]
		if a == nil || b == nil || a == b {
			return fmt.Errorf("link between %v: unknown or identical sites", l.Between)
		}
		lat := scenarios.DefaultLinkLatency
		if l.Latency != nil {
			lat = l.Latency.Duration
		}
		add(a, b, lat)
	}
	return nil
}

// Lookups by name; nil when absent.

func (t *Topology) Site(name string) *Site       { return t.siteByName[name] }
func (t *Topology) Node(name string) *Node       { return t.nodeByName[name] }
func (t *Topology) Feed(name string) *Feed       { return t.feedByName[name] }
func (t *Topology) Switch(name string) *Switch   { return t.switchByName[name] }
func (t *Topology) Service(name string) *Service { return t.serviceByName[name] }

// Rack returns rack NAME of site SITE.
func (t *Topology) Rack(site, name string) *Rack { return t.rackByPath["rack/"+site+"/"+name] }

// Link returns the link between two sites, in either order.
func (t *Topology) Link(a, b string) *Link {
	if b < a {
		a, b = b, a
	}
	return t.linkByPath["link/"+a+"/"+b]
}

// PoolNodes returns the nodes carrying a pool, in file order.
func (t *Topology) PoolNodes(pool string) []*Node {
	var out []*Node
	for _, n := range t.Nodes {
		if n.Carries(pool) {
			out = append(out, n)
		}
	}
	return out
}

// Pools returns every pool carried by some node, in order of first use.
func (t *Topology) Pools() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range t.Nodes {
		for _, p := range n.Pools {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// sortedNames returns the names of nodes sorted, for stable output.
func sortedNames(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
