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

// DialFromHostOf dials address from inside the namespace of the host that
// owns it (falling back to the caller's namespace for other addresses):
// an engine's probe of a member, from the member's own host.
func (l *Lab) DialFromHostOf(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if err == nil {
		for _, h := range l.Hosts() {
			if h.Addr == ip {
				return DialIn(ctx, h.NetNS, &net.Dialer{}, network, address)
			}
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// Listen listens inside node's namespace.
func (l *Lab) Listen(ctx context.Context, node, network, address string) (net.Listener, error) {
	h, ok := l.Host(node)
	if !ok {
		return nil, fmt.Errorf("netlab: unknown node %q", node)
	}
	return ListenIn(ctx, h.NetNS, network, address)
}
