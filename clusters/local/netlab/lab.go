package netlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Debian 12 versions of the tools the lab runs.
var debianPackages = []string{"iproute2=6.1.0-3", "iptables=1.8.9-2"}

// Install installs the Debian packages the lab needs (ip, iptables).
func Install(ctx context.Context, log *slog.Logger) error {
	return install.Apt(ctx, log, debianPackages...)
}

// Host is one node's machine in the lab.
type Host struct {
	Node  string `json:"node"`
	Site  string `json:"site"`
	Rack  string `json:"rack"`
	NetNS string `json:"netns"`
	// Addr is the host's address; services bind it.
	Addr netip.Addr `json:"addr"`
	// Cgroup is the node's cgroup v2 directory; start every process of the
	// node in it (proc.Spec.Cgroup). "" when the machine has no cgroup v2.
	Cgroup string `json:"cgroup,omitempty"`
}

// Lab is a running lab network. Its methods are safe for concurrent use
// and idempotent; every change is saved to the state file before it
// returns.
type Lab struct {
	mu  sync.Mutex
	log *slog.Logger
	st  *State
}

// CgroupV2Root is where the lab's cgroups go (chaosloop/<lab>/<node> under
// it); a hybrid-hierarchy machine mounts cgroup v2 here.
const CgroupV2Root = "/sys/fs/cgroup/unified"

// cgroupBase is the directory holding every lab's cgroups.
func cgroupBase() string { return filepath.Join(CgroupV2Root, "chaosloop") }

// Up builds the network of sc (defaulted and validated) and returns it.
// State goes to stateDir/netlab.json before anything is created, so Down
// (or DownAll) can undo a half-built lab. Running Up again on an existing
// lab repairs what is missing and keeps its recorded faults (isolations,
// powered-off nodes, iptables rules); call HealAll for a clean slate.
func Up(ctx context.Context, log *slog.Logger, sc *scenarios.Scenario, stateDir string) (*Lab, error) {
	return UpWith(ctx, log, sc, stateDir, Options{})
}

// UpWith is Up for a lab with options (another backend's).
func UpWith(ctx context.Context, log *slog.Logger, sc *scenarios.Scenario, stateDir string, o Options) (*Lab, error) {
	t0 := time.Now()
	plan, err := NewPlanWith(sc, o)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	st, err := readState(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Namespaces of this lab without its state file belong to a run
		// with another state directory (or one whose directory was lost):
		// reusing them could disturb a live lab, so refuse.
		if stray, err := labNamespaces(plan.base()); err != nil {
			return nil, err
		} else if len(stray) > 0 {
			return nil, fmt.Errorf("netlab: namespaces of lab %s exist (%s, ...) but %s has no state for them: another run owns them; remove them with DownAll or use another scenario name", plan.Lab, stray[0], filepath.Join(dir, StateFile))
		}
		st = &State{Version: stateVersion, Plan: *plan, StateDir: dir}
	case err != nil:
		return nil, err
	case !reflect.DeepEqual(st.Plan, *plan):
		return nil, fmt.Errorf("netlab: the lab in %s was built from another topology; Down it first", dir)
	}
	st.StateDir = dir
	st.CgroupRoot = ""
	switch {
	case o.Adopt:
		// an adopted host's processes live in its container's cgroups
	case cgroupV2():
		st.CgroupRoot = filepath.Join(cgroupBase(), plan.Lab)
	default:
		log.Warn("no cgroup v2 at "+CgroupV2Root+": power-off falls back to killing the node's processes by PID, freeze is unavailable", "lab", plan.Lab)
	}
	l := &Lab{log: log, st: st}
	if err := st.write(); err != nil {
		return nil, err
	}
	if err := l.build(ctx); err != nil {
		return nil, fmt.Errorf("netlab: up %s: %w", plan.Lab, err)
	}
	log.Info("lab network up", "lab", plan.Lab, "hosts", len(plan.Hosts), "sites", len(plan.Routers),
		"links", len(plan.Links), "took", time.Since(t0).Round(time.Millisecond))
	return l, nil
}

// Load returns the lab recorded in stateDir, touching nothing (for Down or
// for faults after chaosloop restarted).
func Load(log *slog.Logger, stateDir string) (*Lab, error) {
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	st, err := readState(dir)
	if err != nil {
		return nil, err
	}
	st.StateDir = dir
	return &Lab{log: log, st: st}, nil
}

// labNamespaces lists the existing namespaces whose names start with base
// (a lab's).
func labNamespaces(base string) ([]string, error) {
	all, err := namedNetNS()
	if err != nil {
		return nil, err
	}
	var out []string
	for ns := range all {
		if strings.HasPrefix(ns, base) {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out, nil
}

func cgroupV2() bool {
	_, err := os.Stat(filepath.Join(CgroupV2Root, "cgroup.procs"))
	return err == nil
}

// Name is the lab's name (the scenario's).
func (l *Lab) Name() string { return l.st.Plan.Lab }

// StateDir is where the lab's state lives.
func (l *Lab) StateDir() string { return l.st.StateDir }

// Plan returns a copy of the network layout.
func (l *Lab) Plan() Plan {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.st.Plan
	return b
}

// Host returns a node's host.
func (l *Lab) Host(node string) (Host, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.st.Plan.host(node)
	if !ok {
		return Host{}, false
	}
	return l.hostOf(h), true
}

// Hosts returns every host in scenario order.
func (l *Lab) Hosts() []Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Host, 0, len(l.st.Plan.Hosts))
	for i := range l.st.Plan.Hosts {
		out = append(out, l.hostOf(&l.st.Plan.Hosts[i]))
	}
	return out
}

func (l *Lab) hostOf(h *HostPlan) Host {
	return Host{Node: h.Node, Site: h.Site, Rack: h.Rack, NetNS: h.NetNS, Addr: h.Addr, Cgroup: l.st.cgroupDir(h)}
}

// Faults returns the recorded isolated targets and powered-off nodes.
func (l *Lab) Faults() (isolated, off, frozen []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.st.Isolated), slices.Clone(l.st.Off), slices.Clone(l.st.Frozen)
}

// Exec runs argv in node's network namespace (not in its cgroup, so that
// probes still run while the node is frozen) and returns its combined output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) ([]byte, error) {
	h, ok := l.Host(node)
	if !ok {
		return nil, fmt.Errorf("netlab: unknown node %q", node)
	}
	if len(argv) == 0 {
		return nil, errors.New("netlab: exec: empty command")
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NetNS}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s on %s: %w", strings.Join(argv, " "), node, err)
	}
	return out, nil
}

// Dial connects from inside node's namespace, as a process of that node
// would (the socket stays in the namespace; the caller needs no exec).
func (l *Lab) Dial(ctx context.Context, node, network, address string) (net.Conn, error) {
	h, ok := l.Host(node)
	if !ok {
		return nil, fmt.Errorf("netlab: unknown node %q", node)
	}
	return DialIn(ctx, h.NetNS, nil, network, address)
}

// Listen listens inside node's namespace.
func (l *Lab) Listen(ctx context.Context, node, network, address string) (net.Listener, error) {
	h, ok := l.Host(node)
	if !ok {
		return nil, fmt.Errorf("netlab: unknown node %q", node)
	}
	return ListenIn(ctx, h.NetNS, network, address)
}

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
