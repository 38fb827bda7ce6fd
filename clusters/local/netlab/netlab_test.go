package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	chaoslab "github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Three sites in a triangle whose direct dc1-dc3 link is slower than going
// through dc2, so dc1-dc3 traffic transits dc2 until that path breaks.
// dc1-r1 has two switches, one of them (dc1-sw-b) shared with dc1-r2;
// dc2's switch serves both of its racks.
const testTopology = `
sites:
  - name: dc1
    racks:
      - name: r1
        power: [dc1-pdu]
        switches: [dc1-sw-a, dc1-sw-b]
        nodes: [{name: n1}, {name: n2}]
      - name: r2
        power: [dc1-pdu]
        switches: [dc1-sw-b]
        nodes: [{name: n3}]
  - name: dc2
    racks:
      - name: r1
        power: [dc2-pdu]
        switches: [dc2-sw]
        nodes: [{name: n4}, {name: n5}]
      - name: r2
        power: [dc2-pdu]
        switches: [dc2-sw]
        nodes: [{name: n7}]
  - name: dc3
    racks:
      - name: r1
        power: [dc3-pdu]
        switches: [dc3-sw]
        nodes: [{name: n6}]
links:
  - {between: [dc1, dc2], latency: 1ms}
  - {between: [dc2, dc3], latency: 1ms}
  - {between: [dc1, dc3], latency: 5ms}
`

func labName(t testing.TB, short string) string {
	return fmt.Sprintf("nlt%d-%s", os.Getpid(), short)
}

func scenario(t testing.TB, name, topology string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Decode("test.yaml", []byte("name: "+name+"\n"+topology))
	require.NoError(t, err)
	sc = sc.WithDefaults()
	require.NoError(t, sc.Validate())
	return sc
}

// upLab builds a lab and removes everything of it when the test ends, even
// if Up failed half-way.
func upLab(t testing.TB, short, topology string) (*Lab, *scenarios.Scenario, string) {
	t.Helper()
	requireNet(t)
	ctx := context.Background()
	name := labName(t, short)
	sc := scenario(t, name, topology)
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := downAll(context.Background(), enginetest.Log(t), "", nsBase(name), filepath.Join(cgroupBase(), name)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	t0 := time.Now()
	lab, err := Up(ctx, enginetest.Log(t), sc, dir)
	require.NoError(t, err)
	t.Logf("Up of %d hosts took %s", len(lab.Hosts()), time.Since(t0))
	return lab, sc, dir
}

// model is a direct reading of section 4 of the spec (plus run-time rack
// and node isolation, and powered-off nodes being silent), written
// independently of the lab's implementation.
type model struct {
	sc       *scenarios.Scenario
	isolated map[string]bool
	off      map[string]bool
}

type placed struct {
	site, rack string
	switches   []string
}

func (m model) where(node string) placed {
	for _, s := range m.sc.Sites {
		for _, r := range s.Racks {
			for _, n := range r.Nodes {
				if n.Name == node {
					return placed{s.Name, r.Name, r.Switches}
				}
			}
		}
	}
	panic("unknown node " + node)
}

func (m model) attached(node string) bool {
	if m.isolated["node/"+node] || m.off[node] {
		return false
	}
	for _, sw := range m.where(node).switches {
		if !m.isolated["switch/"+sw] {
			return true
		}
	}
	return false
}

func (m model) reachable(a, b string) bool {
	if !m.attached(a) || !m.attached(b) {
		return false
	}
	pa, pb := m.where(a), m.where(b)
	if pa.site == pb.site && pa.rack == pb.rack {
		return true
	}
	if m.isolated["rack/"+pa.site+"/"+pa.rack] || m.isolated["rack/"+pb.site+"/"+pb.rack] {
		return false
	}
	if pa.site == pb.site {
		return true
	}
	// Sites: breadth-first search over working links.
	works := func(x, y string) bool {
		if y < x {
			x, y = y, x
		}
		return !m.isolated["link/"+x+"/"+y] && !m.isolated["site/"+x] && !m.isolated["site/"+y]
	}
	seen := map[string]bool{pa.site: true}
	queue := []string{pa.site}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, l := range m.sc.Links {
			x, y := l.Between[0], l.Between[1]
			if y == cur {
				x, y = y, x
			}
			if x != cur || seen[y] || !works(x, y) {
				continue
			}
			if y == pb.site {
				return true
			}
			seen[y] = true
			queue = append(queue, y)
		}
	}
	return false
}

const probePort = 7077

// serve starts a TCP listener in every host that accepts and closes.
func serve(t *testing.T, lab *Lab) {
	t.Helper()
	for _, h := range lab.Hosts() {
		ln, err := lab.Listen(context.Background(), h.Node, "tcp", fmt.Sprintf("%s:%d", h.Addr, probePort))
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
}

func connects(ctx context.Context, lab *Lab, from string, to Host) error {
	ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	c, err := lab.Dial(ctx, from, "tcp", fmt.Sprintf("%s:%d", to.Addr, probePort))
	if err != nil {
		return err
	}
	return c.Close()
}

// checkReachability connects every ordered pair of hosts and compares with
// the model. A pair that should connect gets a few tries (ARP after a path
// change); one that should not gets one, and must fail.
func checkReachability(t *testing.T, lab *Lab, m model, label string) {
	t.Helper()
	hosts := lab.Hosts()
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	for _, a := range hosts {
		for _, b := range hosts {
			if a.Node == b.Node {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := m.reachable(a.Node, b.Node)
				var err error
				tries := 1
				if want {
					tries = 4
				}
				for i := 0; i < tries; i++ {
					if err = connects(context.Background(), lab, a.Node, b); err == nil {
						break
					}
				}
				got := err == nil
				if got != want {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s -> %s: connected=%v, model says %v (%v)", a.Node, b.Node, got, want, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	require.Empty(t, problems, "%s: reachability differs from the model", label)
}

func TestReachabilityMatchesModel(t *testing.T) {
	lab, sc, _ := upLab(t, "reach", testTopology)
	ctx := context.Background()
	serve(t, lab)
	empty := model{sc: sc, isolated: map[string]bool{}, off: map[string]bool{}}
	checkReachability(t, lab, empty, "no faults")

	cases := [][]string{
		{"switch/dc1-sw-a"},                    // r1 falls back on sw-b
		{"switch/dc1-sw-b"},                    // r1 on sw-a, r2 (only sw-b) alone
		{"switch/dc1-sw-a", "switch/dc1-sw-b"}, // both switches of r1: dc1 all alone
		{"switch/dc2-sw"},                      // one switch, two racks
		{"rack/dc1/r1"},                        // n1, n2 reach only each other
		{"rack/dc2/r1"},                        // its switch also serves dc2-r2, which stays connected
		{"rack/dc1/r1", "switch/dc1-sw-a"},     // isolated rack on its second switch
		{"node/n4"},
		{"node/n1", "switch/dc1-sw-b"},
		{"site/dc2"},                           // dc1-dc3 now over the slow direct link
		{"link/dc2/dc3"},                       // reroute: direct dc1-dc3
		{"link/dc1/dc3"},                       // transit via dc2 only
		{"link/dc1/dc2", "link/dc1/dc3"},       // dc1 cut off from the WAN
		{"link/dc1/dc3", "site/dc2"},           // dc1, dc2, dc3 all apart
		{"site/dc1", "rack/dc2/r2", "node/n6"}, // mixed
		{"switch/dc1-sw-b", "link/dc2/dc3"},    // mixed
		{"rack/dc2/r1", "rack/dc2/r2", "site/dc3"},
	}
	for _, c := range cases {
		label := strings.Join(c, " + ")
		m := model{sc: sc, isolated: map[string]bool{}, off: map[string]bool{}}
		for _, p := range c {
			require.NoError(t, lab.IsolatePath(ctx, p), label)
			m.isolated[p] = true
		}
		checkReachability(t, lab, m, label)
		for _, p := range c {
			require.NoError(t, lab.HealPath(ctx, p), label)
		}
	}
	checkReachability(t, lab, empty, "all healed")

	// Healing one of two switches of a rack keeps the other isolation.
	require.NoError(t, lab.IsolatePath(ctx, "switch/dc1-sw-a"))
	require.NoError(t, lab.IsolatePath(ctx, "switch/dc1-sw-b"))
	require.NoError(t, lab.HealPath(ctx, "switch/dc1-sw-a"))
	checkReachability(t, lab, model{sc: sc, isolated: map[string]bool{"switch/dc1-sw-b": true}}, "sw-b still isolated")
	require.NoError(t, lab.HealAll(ctx))
	checkReachability(t, lab, empty, "heal all")

	// Unknown and non-network targets are refused.
	require.Error(t, lab.IsolatePath(ctx, "switch/nope"))
	require.Error(t, lab.IsolatePath(ctx, "feed/dc1-pdu"))
	require.Error(t, lab.IsolatePath(ctx, "rack/dc2/r9"))
}

func TestUpRepairsAndFaultsSurviveRestart(t *testing.T) {
	lab, sc, dir := upLab(t, "repair", testTopology)
	ctx := context.Background()
	require.NoError(t, lab.IsolatePath(ctx, "link/dc1/dc2"))

	// Lose a host namespace and a switch port, as a crash or an operator might.
	n4, _ := lab.Host("n4")
	require.NoError(t, exec.Command("ip", "netns", "del", n4.NetNS).Run())
	require.NoError(t, exec.Command("ip", "-n", lab.Plan().SwitchNS, "link", "del", "u0").Run())

	// A new process: Up from the state on disk repairs and keeps the faults.
	again, err := Up(ctx, enginetest.Log(t), sc, dir)
	require.NoError(t, err)
	iso, _, _ := again.Faults()
	require.Equal(t, []string{"link/dc1/dc2"}, iso)
	serve(t, again)
	checkReachability(t, again, model{sc: sc, isolated: map[string]bool{"link/dc1/dc2": true}}, "repaired")

	// Load (no Up) and heal from yet another Lab value.
	loaded, err := Load(enginetest.Log(t), dir)
	require.NoError(t, err)
	require.NoError(t, loaded.HealPath(ctx, "link/dc1/dc2"))
	checkReachability(t, loaded, model{sc: sc}, "healed after reload")

	// The same lab from another state directory is refused: another run owns it.
	_, err = Up(ctx, enginetest.Log(t), sc, t.TempDir())
	require.ErrorContains(t, err, "another run owns them")

	// A different topology in the same state directory is refused.
	other := scenario(t, sc.Name, strings.Replace(testTopology, "{name: n6}", "{name: n6}, {name: n8}", 1))
	_, err = Up(ctx, enginetest.Log(t), other, dir)
	require.Error(t, err)
}

func TestHostsAreOnlyInLabSpace(t *testing.T) {
	lab, _, _ := upLab(t, "addr", testTopology)
	ctx := context.Background()
	for _, h := range lab.Hosts() {
		require.True(t, labPrefix.Contains(h.Addr), h.Addr)
		out, err := lab.Exec(ctx, h.Node, "ip", "-4", "route", "show")
		require.NoError(t, err)
		require.NotContains(t, string(out), "default", "host %s must have no default route", h.Node)
		out, err = lab.Exec(ctx, h.Node, "ip", "-4", "-o", "addr", "show")
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			require.True(t, f[3] == "127.0.0.1/8" || f[3] == h.Addr.String()+"/32", "unexpected address %s on %s", f[3], h.Node)
		}
		hosts, err := lab.Exec(ctx, h.Node, "getent", "hosts", "n6")
		require.NoError(t, err)
		n6, _ := lab.Host("n6")
		require.Contains(t, string(hosts), n6.Addr.String())
	}
}

func TestPowerOffKillsTheNodeAtOnce(t *testing.T) {
	lab, sc, dir := upLab(t, "power", testTopology)
	ctx := context.Background()
	h, _ := lab.Host("n5")
	if h.Cgroup == "" {
		t.Skip("no cgroup v2")
	}
	serve(t, lab)
	var recs []*proc.Record
	for i := range 3 {
		r, err := proc.Start(dir, proc.Spec{Name: fmt.Sprintf("n5.sleep%d", i), NetNS: h.NetNS, Cgroup: h.Cgroup, Path: "sleep", Args: []string{"300"}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Kill() })
		recs = append(recs, r)
	}
	other, err := proc.Start(dir, proc.Spec{Name: "n4.sleep", NetNS: "", Cgroup: mustHost(t, lab, "n4").Cgroup, Path: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Kill() })
	for _, r := range recs {
		require.True(t, r.Alive())
	}
	require.NoError(t, lab.PowerOff(ctx, "n5"))
	for _, r := range recs {
		require.False(t, r.Alive(), "%s survived power-off", r.Name)
	}
	require.True(t, other.Alive(), "another node's process died")
	require.False(t, lab.Powered("n5"))
	// A powered-off machine is silent on the network too.
	checkReachability(t, lab, model{sc: sc, off: map[string]bool{"n5": true}}, "n5 off")
	require.NoError(t, lab.PowerOn(ctx, "n5"))
	checkReachability(t, lab, model{sc: sc}, "n5 on")

	// Freeze stops the node's processes until thawed.
	r, err := proc.Start(dir, proc.Spec{Name: "n5.sleep-f", NetNS: h.NetNS, Cgroup: h.Cgroup, Path: "sleep", Args: []string{"300"}, Log: filepath.Join(dir, "f.log")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Kill() })
	require.NoError(t, lab.Freeze(ctx, "n5"))
	ev, err := os.ReadFile(filepath.Join(h.Cgroup, "cgroup.events"))
	require.NoError(t, err)
	require.Contains(t, string(ev), "frozen 1")
	require.NoError(t, lab.Thaw(ctx, "n5"))
	ev, err = os.ReadFile(filepath.Join(h.Cgroup, "cgroup.events"))
	require.NoError(t, err)
	require.Contains(t, string(ev), "frozen 0")
	b, _ := os.ReadFile(filepath.Join(dir, "f.log"))
	require.True(t, r.Alive(), "%s", b)
}

func mustHost(t *testing.T, lab *Lab, node string) Host {
	h, ok := lab.Host(node)
	require.True(t, ok, node)
	return h
}

func TestLatencyAndLossRules(t *testing.T) {
	lab, sc, _ := upLab(t, "rules", testTopology)
	ctx := context.Background()
	serve(t, lab)
	link := scenarios.Target{Kind: scenarios.TargetLink, A: "dc1", B: "dc2"}
	qs, err := lab.LatencyRules(ctx, link)
	require.NoError(t, err)
	require.Len(t, qs, 2)
	again, err := lab.LatencyRules(ctx, link)
	require.NoError(t, err)
	require.Equal(t, qs, again)
	for _, q := range qs {
		out, err := exec.Command("ip", "netns", "exec", q.NetNS, "iptables-save", "-t", "mangle").CombinedOutput()
		require.NoError(t, err)
		require.Contains(t, string(out), fmt.Sprintf("NFQUEUE --queue-num %d --queue-bypass", q.Num))
	}
	node := scenarios.Target{Kind: scenarios.TargetNode, Name: "n6"}
	nq, err := lab.LatencyRules(ctx, node)
	require.NoError(t, err)
	require.Len(t, nq, 1)
	require.NotEqual(t, qs[0].Num, nq[0].Num)
	// Nobody consumes the queues: --queue-bypass lets traffic through.
	checkReachability(t, lab, model{sc: sc}, "latency rules without a delayer")
	// ... and the rules did see it (dc1-dc2 traffic crosses that link).
	for _, q := range qs {
		out, err := exec.Command("ip", "netns", "exec", q.NetNS, "iptables", "-t", "mangle", "-L", "POSTROUTING", "-v", "-n", "-x").CombinedOutput()
		require.NoError(t, err)
		var pkts int
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "NFQUEUE") {
				_, _ = fmt.Sscan(line, &pkts)
			}
		}
		require.Positive(t, pkts, "no packet went through the queue rule in %s:\n%s", q.NetNS, out)
	}

	// Total loss on a node is a real cut, in both directions.
	require.NoError(t, lab.LossRules(ctx, scenarios.Target{Kind: scenarios.TargetNode, Name: "n4"}, 1))
	// Total loss on the direct dc1-dc3 link changes nothing (traffic goes via dc2).
	require.NoError(t, lab.LossRules(ctx, scenarios.Target{Kind: scenarios.TargetLink, A: "dc1", B: "dc3"}, 1))
	checkReachability(t, lab, model{sc: sc, isolated: map[string]bool{"node/n4": true}}, "loss 100% on n4")

	// Rules survive a reload and are removed from it.
	loaded, err := Load(enginetest.Log(t), lab.StateDir())
	require.NoError(t, err)
	require.NoError(t, loaded.RemoveLatencyRules(ctx, link))
	require.NoError(t, loaded.RemoveLatencyRules(ctx, link))
	require.NoError(t, loaded.RemoveLossRules(ctx, scenarios.Target{Kind: scenarios.TargetNode, Name: "n4"}))
	require.NoError(t, loaded.HealAll(ctx))
	plan := lab.Plan()
	for _, ns := range plan.namespaces() {
		for _, table := range []string{"mangle", "filter"} {
			out, err := exec.Command("ip", "netns", "exec", ns, "iptables-save", "-t", table).CombinedOutput()
			require.NoError(t, err)
			require.NotContains(t, string(out), "chaosloop", "rule left in %s", ns)
		}
	}
	checkReachability(t, loaded, model{sc: sc}, "rules removed")
	require.Error(t, loaded.LossRules(ctx, scenarios.Target{Kind: scenarios.TargetSite, Name: "dc1"}, 0.5))
}

func TestDownAfterCrashLeavesNothing(t *testing.T) {
	lab, _, dir := upLab(t, "crash", testTopology)
	ctx := context.Background()
	name := lab.Name()
	require.NoError(t, lab.IsolatePath(ctx, "site/dc3"))
	_, err := lab.LatencyRules(ctx, scenarios.Target{Kind: scenarios.TargetNode, Name: "n1"})
	require.NoError(t, err)
	h := mustHost(t, lab, "n2")
	// One engine-like process recorded in the state dir, one only in a cgroup,
	// one only in a namespace.
	recorded, err := proc.Start(dir, proc.Spec{Name: "n2.sleep", NetNS: h.NetNS, Path: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = recorded.Kill() })
	var inCgroup *proc.Record
	if h.Cgroup != "" {
		inCgroup, err = proc.Start(t.TempDir(), proc.Spec{Name: "n2.cg", Cgroup: h.Cgroup, Path: "sleep", Args: []string{"300"}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = inCgroup.Kill() })
	}
	inNS, err := proc.Start(t.TempDir(), proc.Spec{Name: "n3.ns", NetNS: mustHost(t, lab, "n3").NetNS, Path: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = inNS.Kill() })

	// "Crash": forget the Lab value; a new one comes from the state file only.
	lab = nil
	fresh, err := Load(enginetest.Log(t), dir)
	require.NoError(t, err)
	require.NoError(t, fresh.Down(ctx))

	require.False(t, recorded.Alive())
	if inCgroup != nil {
		require.False(t, inCgroup.Alive())
	}
	require.False(t, inNS.Alive())
	assertNoTrace(t, name, dir)
	// Down twice is fine (nothing left to do).
	_, err = Load(enginetest.Log(t), dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestDownAllRemovesEveryLabUnderRoot(t *testing.T) {
	requireNet(t)
	ctx := context.Background()
	root := t.TempDir()
	name := labName(t, "all")
	t.Cleanup(func() {
		_ = downAll(context.Background(), enginetest.Log(t), "", nsBase(name), filepath.Join(cgroupBase(), name))
	})
	sc := scenario(t, name, testTopology)
	lab, err := Up(ctx, enginetest.Log(t), sc, filepath.Join(root, "run1"))
	require.NoError(t, err)
	h := mustHost(t, lab, "n1")
	r, err := proc.Start(filepath.Join(root, "run1"), proc.Spec{Name: "n1.sleep", NetNS: h.NetNS, Cgroup: h.Cgroup, Path: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Kill() })
	// A namespace whose state file was lost, as after a crash mid-Up.
	require.NoError(t, exec.Command("ip", "netns", "add", nsBase(name)+"stray").Run())

	require.NoError(t, downAll(ctx, enginetest.Log(t), root, nsBase(name), filepath.Join(cgroupBase(), name)))
	require.False(t, r.Alive())
	assertNoTrace(t, name, filepath.Join(root, "run1"))
	_, err = os.Stat(filepath.Join(root, "run1"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func assertNoTrace(t *testing.T, name, dir string) {
	t.Helper()
	ns, err := namedNetNS()
	require.NoError(t, err)
	for n := range ns {
		require.False(t, strings.HasPrefix(n, nsBase(name)), "namespace %s left", n)
	}
	ents, _ := os.ReadDir("/etc/netns")
	for _, e := range ents {
		require.False(t, strings.HasPrefix(e.Name(), nsBase(name)), "/etc/netns/%s left", e.Name())
	}
	_, err = os.Stat(filepath.Join(cgroupBase(), name))
	require.True(t, errors.Is(err, os.ErrNotExist), "cgroup left: %v", err)
	_, err = os.Stat(filepath.Join(dir, StateFile))
	require.True(t, errors.Is(err, os.ErrNotExist), "state file left: %v", err)
	recs, err := proc.List(dir)
	require.NoError(t, err)
	require.Empty(t, recs)
}

func TestPlanNamesAndAddresses(t *testing.T) {
	sc := scenario(t, "plan", testTopology)
	p, err := NewPlan(sc)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, h := range p.Hosts {
		require.True(t, labPrefix.Contains(h.Addr))
		require.False(t, seen[h.Addr.String()])
		seen[h.Addr.String()] = true
		require.True(t, strings.HasPrefix(h.NetNS, "cl-plan."))
		for _, port := range h.Ports {
			require.LessOrEqual(t, len(port.Port), 15)
		}
	}
	n1, _ := p.host("n1")
	require.Len(t, n1.Ports, 2)
	// dc1-sw-b serves two racks: two bridges.
	n := 0
	for _, b := range p.Bridges {
		if b.Switch == "dc1-sw-b" {
			n++
		}
	}
	require.Equal(t, 2, n)
	// Omitted links are a full mesh.
	full := scenario(t, "mesh", strings.Split(testTopology, "links:")[0])
	fp, err := NewPlan(full)
	require.NoError(t, err)
	require.Len(t, fp.Links, 3)
}

// A 12-host, 3-site lab: Up and Down timings on this machine.
const benchTopology = `
sites:
  - name: a
    racks:
      - {name: r1, power: [a-p], switches: [a-s1, a-s2], nodes: [{name: a1}, {name: a2}]}
      - {name: r2, power: [a-p], switches: [a-s2], nodes: [{name: a3}, {name: a4}]}
  - name: b
    racks:
      - {name: r1, power: [b-p], switches: [b-s1], nodes: [{name: b1}, {name: b2}]}
      - {name: r2, power: [b-p], switches: [b-s2], nodes: [{name: b3}, {name: b4}]}
  - name: c
    racks:
      - {name: r1, power: [c-p], switches: [c-s1, c-s2], nodes: [{name: c1}, {name: c2}, {name: c3}, {name: c4}]}
`

func BenchmarkUpDown12Hosts(b *testing.B) {
	requireNet(b)
	ctx := context.Background()
	name := labName(b, "bench")
	sc := scenario(b, name, benchTopology)
	log := slog.New(slog.DiscardHandler)
	b.Cleanup(func() { _ = downAll(context.Background(), log, "", nsBase(name), filepath.Join(cgroupBase(), name)) })
	var up, down time.Duration
	for b.Loop() {
		dir := b.TempDir()
		t0 := time.Now()
		lab, err := Up(ctx, log, sc, dir)
		require.NoError(b, err)
		up += time.Since(t0)
		t1 := time.Now()
		require.NoError(b, lab.Down(ctx))
		down += time.Since(t1)
	}
	b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "up-ms/op")
	b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "down-ms/op")
}

func TestFullMeshByDefault(t *testing.T) {
	lab, sc, _ := upLab(t, "mesh", benchTopology)
	ctx := context.Background()
	require.Len(t, lab.Plan().Links, 3)
	serve(t, lab)
	// The model reads sc.Links: give it the implied mesh.
	meshed := *sc
	for i, a := range sc.Sites {
		for _, b := range sc.Sites[i+1:] {
			meshed.Links = append(meshed.Links, scenarios.Link{Between: []string{a.Name, b.Name}})
		}
	}
	checkReachability(t, lab, model{sc: &meshed}, "full mesh")
	require.NoError(t, lab.IsolatePath(ctx, "link/a/b"))
	require.NoError(t, lab.IsolatePath(ctx, "switch/a-s1"))
	checkReachability(t, lab, model{sc: &meshed, isolated: map[string]bool{"link/a/b": true, "switch/a-s1": true}}, "a-b through c")
}

// Three sites in a line: dc1 and dc3 have no link of their own, so all
// their traffic transits dc2.
const lineTopology = `
sites:
  - {name: dc1, racks: [{name: r1, power: [dc1-pdu], switches: [dc1-sw], nodes: [{name: n1}]}]}
  - {name: dc2, racks: [{name: r1, power: [dc2-pdu], switches: [dc2-sw], nodes: [{name: n2}]}]}
  - {name: dc3, racks: [{name: r1, power: [dc3-pdu], switches: [dc3-sw], nodes: [{name: n3}]}]}
links:
  - {between: [dc1, dc2], latency: 1ms}
  - {between: [dc2, dc3], latency: 1ms}
`

// TestDarkSiteTransitsNothing: spec section 4 — powering a site off takes
// its WAN router down, so nothing transits it; powering its nodes off (a
// rack) leaves the router carrying transit traffic.
func TestDarkSiteTransitsNothing(t *testing.T) {
	lab, _, _ := upLab(t, "line", lineTopology)
	ctx := context.Background()
	serve(t, lab)
	n3 := mustHost(t, lab, "n3")
	reach := func(label string, want bool) {
		t.Helper()
		var err error
		// A path that should work gets a few tries (ARP after a change).
		for range 5 {
			if err = connects(ctx, lab, "n1", n3); err == nil || !want {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		require.Equal(t, want, err == nil, "%s: n1 -> n3 connected=%v, want %v (%v)", label, err == nil, want, err)
	}
	reach("no fault: dc1 reaches dc3 through dc2", true)

	// dc2's node loses power, its router keeps running: transit works.
	require.NoError(t, lab.PowerOff(ctx, "n2"))
	reach("dc2's rack dark, router on", true)

	// The whole site dark: its router too.
	require.NoError(t, lab.SetRouterPower(ctx, "dc2", false))
	require.False(t, lab.RouterPowered("dc2"))
	reach("site dc2 dark", false)
	// Cut on the switch side: the routers' own WAN devices stay up (downing
	// them would delete their routes).
	for _, r := range lab.st.Plan.Routers {
		cur, err := links(ctx, r.NetNS)
		require.NoError(t, err)
		for _, lk := range lab.st.Plan.Links {
			if lk.A == r.Site || lk.B == r.Site {
				require.True(t, cur[lk.Dev].adminUp(), "%s: router device %s set down", r.Site, lk.Dev)
			}
		}
	}

	// Power back: router first, then the node.
	require.NoError(t, lab.SetRouterPower(ctx, "dc2", true))
	reach("dc2's router back", true)
	require.NoError(t, lab.PowerOn(ctx, "n2"))
	reach("all back", true)

	// HealAll also powers routers back.
	require.NoError(t, lab.SetRouterPower(ctx, "dc2", false))
	reach("dc2 dark again", false)
	require.NoError(t, lab.HealAll(ctx))
	require.True(t, lab.RouterPowered("dc2"))
	reach("heal all", true)
	require.Error(t, lab.SetRouterPower(ctx, "dc9", false))
}

// requireNet: the lab network needs ip and iptables (installed in CI).
func requireNet(tb testing.TB) {
	tb.Helper()
	enginetest.RequireInstalled(tb, func(ctx context.Context) error { return Install(ctx, enginetest.Log(tb)) }, "ip", "iptables")
}

// The lab's client connections (lab.FailFastDial's watchdog) end within
// seconds when the path goes dark, whether data was in flight or waiting
// behind a peer's closed window; a busy peer keeping its window closed is
// kept (lab's own TestWatchPeerKeepsABusyPeer).
func TestWatchedConnectionsEndOnADarkPath(t *testing.T) {
	lab, _, _ := upLab(t, "dark", testTopology)
	ctx := context.Background()
	n5 := mustHost(t, lab, "n5")
	h4 := mustHost(t, lab, "n4")
	addr := fmt.Sprintf("%s:%d", n5.Addr, probePort+1)
	const silence = time.Second
	for _, tc := range []struct {
		name string
		fill bool // fill the peer's window before the cut
	}{{"data in flight", false}, {"closed window", true}} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, lab.PowerOn(ctx, "n5"))
			ln, err := lab.Listen(ctx, "n5", "tcp", addr)
			require.NoError(t, err)
			defer ln.Close()
			acc := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					acc <- c
				}
			}()
			raw, err := DialIn(ctx, h4.NetNS, chaoslab.FailFastDialer(silence), "tcp", addr)
			require.NoError(t, err)
			c := chaoslab.WatchPeer(raw, silence)
			defer c.Close()
			peer := <-acc
			defer peer.Close()
			werr := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						werr <- err
						return
					}
					if !tc.fill {
						time.Sleep(50 * time.Millisecond)
					}
				}
			}()
			if tc.fill {
				time.Sleep(2 * time.Second) // window closed, probes answered
			} else {
				go func() { _, _ = io.Copy(io.Discard, peer) }()
				time.Sleep(500 * time.Millisecond)
			}
			select {
			case err := <-werr:
				t.Fatalf("connection ended before the cut: %v", err)
			default:
			}
			require.NoError(t, lab.PowerOff(ctx, "n5"))
			select {
			case err := <-werr:
				require.ErrorIs(t, err, syscall.ETIMEDOUT)
			case <-time.After(60 * time.Second):
				t.Fatal("connection over a dark path still open after 60 s")
			}
			// A new dial gives up too, without the caller's deadline
			// (franz-go sets none on a custom dialer): the kernel's SYN
			// retries alone would take minutes.
			derr := make(chan error, 1)
			go func() {
				c, err := DialIn(context.Background(), h4.NetNS, chaoslab.FailFastDialer(silence), "tcp", addr)
				if err == nil {
					c.Close()
				}
				derr <- err
			}()
			select {
			case err := <-derr:
				require.Error(t, err)
			case <-time.After(60 * time.Second):
				t.Fatal("dial over a dark path still waiting after 60 s")
			}
		})
	}
}
