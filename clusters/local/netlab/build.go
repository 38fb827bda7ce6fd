package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sysctls set in every namespace: carrier loss must take routes out of use
// (that is how a host with two switches survives one), strict reverse-path
// filtering would drop the replies of a rerouted path, and IPv6 would only
// add link-local noise.
var commonSysctls = [][2]string{
	{"net.ipv4.conf.all.ignore_routes_with_linkdown", "1"},
	{"net.ipv4.conf.default.ignore_routes_with_linkdown", "1"},
	{"net.ipv4.conf.all.rp_filter", "0"},
	{"net.ipv4.conf.default.rp_filter", "0"},
	{"net.ipv6.conf.all.disable_ipv6", "1"},
	{"net.ipv6.conf.default.disable_ipv6", "1"},
}

var routerSysctls = [][2]string{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv4.conf.all.send_redirects", "0"},
	{"net.ipv4.conf.default.send_redirects", "0"},
}

// Bridged frames must not go through the switch namespace's iptables
// (br_netfilter is built in here): rules belong to hosts and routers.
var switchSysctls = [][2]string{
	{"net.bridge.bridge-nf-call-iptables", "0"},
	{"net.bridge.bridge-nf-call-arptables", "0"},
}

var optionalSysctls = map[string]bool{
	"net.bridge.bridge-nf-call-iptables":  true,
	"net.bridge.bridge-nf-call-arptables": true,
	"net.ipv6.conf.all.disable_ipv6":      true,
	"net.ipv6.conf.default.disable_ipv6":  true,
}

// veth is one veth pair of the plan.
type veth struct{ nsA, devA, nsB, devB string }

func (p *Plan) veths(detached map[string]bool) []veth {
	var vs []veth
	for _, h := range p.Hosts {
		if detached[h.NetNS] {
			continue
		}
		for _, port := range h.Ports {
			vs = append(vs, veth{h.NetNS, port.Dev, p.SwitchNS, port.Port})
		}
	}
	for _, b := range p.Bridges {
		r, _ := p.router(b.Site)
		vs = append(vs, veth{r.NetNS, b.RouterDev, p.SwitchNS, b.Uplink})
	}
	for _, lk := range p.Links {
		ra, _ := p.router(lk.A)
		rb, _ := p.router(lk.B)
		vs = append(vs, veth{ra.NetNS, lk.Dev, p.SwitchNS, lk.PortA}, veth{rb.NetNS, lk.Dev, p.SwitchNS, lk.PortB})
	}
	return vs
}

// build creates or repairs every namespace, device, address, route and
// cgroup of the plan, then applies the recorded faults.
func (l *Lab) build(ctx context.Context) error {
	p := &l.st.Plan
	existing, err := namedNetNS()
	if err != nil {
		return err
	}
	detached, detachedPorts := p.detached(existing)
	present := slices.DeleteFunc(p.namespaces(), func(ns string) bool { return detached[ns] })
	var add []string
	fresh := map[string]bool{}
	for _, ns := range present {
		if !existing[ns] {
			add = append(add, "netns add "+ns)
			fresh[ns] = true
		}
	}
	if err := ipBatch(ctx, "", add); err != nil {
		return err
	}
	for _, ns := range present {
		kv := slices.Clone(commonSysctls)
		switch {
		case ns == p.SwitchNS:
			kv = append(kv, switchSysctls...)
		case strings.HasPrefix(ns, p.base()+"r."):
			kv = append(kv, routerSysctls...)
		}
		if err := writeSysctls(ns, kv, optionalSysctls); err != nil {
			return err
		}
	}

	// Devices: query only namespaces that existed before.
	devs := map[string]map[string]ipLink{}
	for _, ns := range present {
		if fresh[ns] {
			devs[ns] = map[string]ipLink{}
			continue
		}
		m, err := links(ctx, ns)
		if err != nil {
			return err
		}
		devs[ns] = m
	}
	var create []string
	del := map[string][]string{}
	for _, v := range p.veths(detached) {
		_, hasA := devs[v.nsA][v.devA]
		_, hasB := devs[v.nsB][v.devB]
		if hasA && hasB {
			continue
		}
		// A lone end means its peer's namespace was lost: start over.
		if hasA {
			del[v.nsA] = append(del[v.nsA], v.devA)
		}
		if hasB {
			del[v.nsB] = append(del[v.nsB], v.devB)
		}
		create = append(create, fmt.Sprintf("link add %s netns %s type veth peer name %s netns %s", v.devA, v.nsA, v.devB, v.nsB))
	}
	for ns, gone := range del {
		if err := removeDevices(ctx, ns, gone); err != nil {
			return err
		}
	}
	if err := ipBatch(ctx, "", create); err != nil {
		return err
	}

	// Configuration, one batch per namespace, all idempotent.
	batches := map[string][]string{}
	sw := []string{"link set dev lo up"}
	bridges := map[string]bool{}
	for _, b := range p.Bridges {
		bridges[b.Bridge] = true
	}
	for _, lk := range p.Links {
		bridges[lk.Bridge] = true
	}
	for _, name := range slices.Sorted(mapsKeys(bridges)) {
		if _, ok := devs[p.SwitchNS][name]; !ok {
			sw = append(sw, "link add "+name+" type bridge stp_state 0 forward_delay 0 mcast_snooping 0")
		}
		sw = append(sw, "link set dev "+name+" up")
	}
	for _, h := range p.Hosts {
		for _, port := range h.Ports {
			if !detachedPorts[port.Port] {
				sw = append(sw, "link set dev "+port.Port+" master "+port.Bridge)
			}
		}
	}
	for _, b := range p.Bridges {
		sw = append(sw, "link set dev "+b.Uplink+" master "+b.Bridge)
	}
	for _, lk := range p.Links {
		sw = append(sw, "link set dev "+lk.PortA+" master "+lk.Bridge, "link set dev "+lk.PortB+" master "+lk.Bridge)
	}
	for port, up := range l.desiredPorts() {
		if !detachedPorts[port] {
			sw = append(sw, "link set dev "+port+" "+upDown(up))
		}
	}
	batches[p.SwitchNS] = sw

	for _, h := range p.Hosts {
		if !detached[h.NetNS] {
			batches[h.NetNS] = p.hostCommands(&h)
		}
	}
	for _, r := range p.Routers {
		cmds := []string{"link set dev lo up", fmt.Sprintf("addr replace %s/32 dev lo", r.Addr)}
		for _, b := range p.Bridges {
			if b.Site == r.Site {
				cmds = append(cmds,
					"link set dev "+b.RouterDev+" up",
					fmt.Sprintf("route replace %s dev %s src %s metric %d", b.Subnet, b.RouterDev, r.Addr, b.Metric))
			}
		}
		cmds = append(cmds, p.routedToSite(&r)...)
		for _, lk := range p.Links {
			if lk.A == r.Site || lk.B == r.Site {
				cmds = append(cmds, "link set dev "+lk.Dev+" up")
			}
		}
		batches[r.NetNS] = append(cmds, l.wanRoutes(r.Site)...)
	}
	if err := runBatches(ctx, batches); err != nil {
		return err
	}

	if err := l.ensureCgroups(); err != nil {
		return err
	}
	if err := l.writeHostsFiles(); err != nil {
		return err
	}
	return l.repairRules(ctx)
}

// hostCommands configure a host: its address, ports and routes, and direct
// routes to the prefixes routed to the other hosts of its rack.
func (p *Plan) hostCommands(h *HostPlan) []string {
	cmds := []string{"link set dev lo up", fmt.Sprintf("addr replace %s/32 dev lo", h.Addr)}
	for _, port := range h.Ports {
		cmds = append(cmds,
			"link set dev "+port.Dev+" up",
			fmt.Sprintf("route replace %s dev %s src %s metric %d", h.Subnet, port.Dev, h.Addr, port.Metric),
			fmt.Sprintf("route replace %s via %s dev %s onlink src %s metric %d", labPrefix, h.Gateway, port.Dev, h.Addr, port.Metric))
	}
	for _, o := range p.Hosts {
		if o.Node == h.Node || o.Subnet != h.Subnet {
			continue
		}
		for _, pr := range o.Routed {
			for _, port := range h.Ports {
				cmds = append(cmds, fmt.Sprintf("route replace %s via %s dev %s onlink src %s metric %d", pr, o.Addr, port.Dev, h.Addr, port.Metric))
			}
		}
	}
	return cmds
}

// routedToSite are a site router's routes to the prefixes routed to its
// own hosts: through each switch of the host's rack, as its subnet.
func (p *Plan) routedToSite(r *RouterPlan) []string {
	var cmds []string
	for _, h := range p.Hosts {
		if h.Site != r.Site {
			continue
		}
		for _, b := range p.Bridges {
			if b.Site != h.Site || b.Rack != h.Rack {
				continue
			}
			for _, pr := range h.Routed {
				cmds = append(cmds, fmt.Sprintf("route replace %s via %s dev %s onlink src %s metric %d", pr, h.Addr, b.RouterDev, r.Addr, b.Metric))
			}
		}
	}
	return cmds
}

// detached are the adopted hosts' namespaces not attached (yet), and
// their switch ports: Up and the faults leave them alone until AttachHost.
func (p *Plan) detached(existing map[string]bool) (map[string]bool, map[string]bool) {
	ns, ports := map[string]bool{}, map[string]bool{}
	for _, h := range p.Hosts {
		if h.Adopted && !existing[h.NetNS] {
			ns[h.NetNS] = true
			for _, port := range h.Ports {
				ports[port.Port] = true
			}
		}
	}
	return ns, ports
}

// removeDevices deletes lone veth ends and waits until their names are
// free. A lone end is usually the peer of a namespace being destroyed,
// which the kernel does asynchronously, so it may vanish by itself at any
// moment: a failed delete is only an error if the device stays.
func removeDevices(ctx context.Context, ns string, devs []string) error {
	for _, d := range devs {
		_ = exec.CommandContext(ctx, "ip", "-n", ns, "link", "del", "dev", d).Run()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, err := links(ctx, ns)
		if err != nil {
			return err
		}
		left := slices.DeleteFunc(slices.Clone(devs), func(d string) bool { _, ok := cur[d]; return !ok })
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("devices %v in %s could not be removed", left, ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// runBatches runs each namespace's batch concurrently.
func runBatches(ctx context.Context, batches map[string][]string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8)
	for ns, cmds := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ipBatch(ctx, ns, cmds); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$`)

// writeHostsFiles gives every host an /etc/hosts naming all lab nodes
// (ip netns exec bind-mounts /etc/netns/NS/hosts over /etc/hosts), so
// engines resolve peers, and reverse lookups answer at once.
func (l *Lab) writeHostsFiles() error {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	for _, h := range l.st.Plan.Hosts {
		if hostnameRE.MatchString(h.Node) {
			fmt.Fprintf(&b, "%s\t%s\n", h.Addr, h.Node)
		}
	}
	for _, h := range l.st.Plan.Hosts {
		dir := filepath.Join("/etc/netns", h.NetNS)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
