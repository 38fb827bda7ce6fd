package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
)

// The lab test runs the agent as a child process of the test binary
// inside a network namespace (`ip netns exec NS <test binary>`), so that
// the agent's iptables act on that namespace exactly as in a hostNetwork
// pod, and a SIGKILL is a real crash. The child reaches the API server on
// the host's loopback through sockets it creates in the host's namespace
// (hostDial). These variables tell the child what to be.
const (
	childEnv      = "CHAOSLOOP_AGENT_TEST_CHILD" // "agent" or "cleanup"
	kubeconfigEnv = "CHAOSLOOP_AGENT_TEST_KUBECONFIG"
	nodeEnv       = "CHAOSLOOP_AGENT_TEST_NODE"
	labScenario   = "agent-lab"
	agentNameEnv  = "CHAOSLOOP_AGENT_TEST_NAME"
	hostNSEnv     = "CHAOSLOOP_AGENT_TEST_HOSTNS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "agent":
		os.Exit(childAgent())
	case "cleanup":
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := Cleanup(context.Background(), log, "", ""); err != nil {
			log.Error("cleanup", "err", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(2)
}

// childAgent is the agent process: the agent's own ServiceAccount
// (impersonated), so the Role of NewManifest is what lets it work.
func childAgent() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: os.Getenv(kubeconfigEnv)},
		&clientcmd.ConfigOverrides{CurrentContext: apitest.ContextName}).ClientConfig()
	if err != nil {
		log.Error("kubeconfig", "err", err)
		return 1
	}
	cfg.Dial = hostDial(os.Getenv(hostNSEnv))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + Namespace + ":" + Name}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Error("client", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Run(ctx, log, Config{Kube: kube, Node: os.Getenv(nodeEnv), Agent: os.Getenv(agentNameEnv), Scenario: labScenario, Resync: 5 * time.Second}); err != nil {
		log.Error("agent", "err", err)
		return 1
	}
	return 0
}

// hostDial dials from the network namespace at nsPath: the socket is made
// by a thread moved there, and stays there once the thread moves back.
func hostDial(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netlab.InNetNSAt(nsPath, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

var nsCounter atomic.Int32

// lab is two network namespaces joined by a veth pair: the agent's node
// A (198.18.251.1) and a peer B (198.18.251.2) with a TCP listener on A.
type lab struct {
	t          *testing.T
	a, b       string // namespace names
	addrA      string
	addrB      string
	listenAddr string
	dir        string // agent logs
	api        *apitest.Server
	client     *Client
}

func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return string(out)
}

func newLab(t *testing.T) *lab {
	enginetest.RequireInstalled(t, nil, "iptables", "ip")
	ev := enginetest.NewEvidence(t)
	api := apitest.Start(t)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, nsCounter.Add(1))
	l := &lab{t: t, a: "cla-a" + id, b: "cla-b" + id, addrA: "198.18.251.1", addrB: "198.18.251.2", dir: ev.Sub("agents"), api: api}
	for _, ns := range []string{l.a, l.b} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("deleting netns %s: %v: %s", ns, err, out)
			}
		})
	}
	ifA, ifB := "cla"+id, "clb"+id
	sh(t, "ip", "link", "add", ifA, "netns", l.a, "type", "veth", "peer", "name", ifB, "netns", l.b)
	for _, s := range []struct{ ns, dev, addr string }{{l.a, ifA, l.addrA}, {l.b, ifB, l.addrB}} {
		sh(t, "ip", "-n", s.ns, "addr", "add", s.addr+"/30", "dev", s.dev)
		sh(t, "ip", "-n", s.ns, "link", "set", s.dev, "up")
		sh(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	}

	// a listener on A that accepts and closes: the TCP handshake is the probe
	var ln net.Listener
	require.NoError(t, netlab.InNetNSAt(l.nsPath(l.a), func() error {
		var err error
		ln, err = net.Listen("tcp4", l.addrA+":0")
		return err
	}))
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
	l.listenAddr = ln.Addr().String()

	kube, err := kubernetes.NewForConfig(api.Config)
	require.NoError(t, err)
	ctx := t.Context()
	m, err := NewManifest("chaosloop:test", labScenario)
	require.NoError(t, err)
	_, err = kube.CoreV1().Namespaces().Create(ctx, m.Namespace, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kube.CoreV1().ServiceAccounts(Namespace).Create(ctx, m.ServiceAccount, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kube.RbacV1().Roles(Namespace).Create(ctx, m.Role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kube.RbacV1().RoleBindings(Namespace).Create(ctx, m.RoleBinding, metav1.CreateOptions{})
	require.NoError(t, err)
	// the API server validates the DaemonSet (nothing runs it here)
	_, err = kube.AppsV1().DaemonSets(Namespace).Create(ctx, m.DaemonSet, metav1.CreateOptions{})
	require.NoError(t, err)
	l.client = &Client{Kube: kube, Log: enginetest.Log(t), Scenario: labScenario}
	return l
}

func (l *lab) nsPath(ns string) string { return filepath.Join("/var/run/netns", ns) }

// agentProc is an agent running as a child process in namespace A.
type agentProc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (l *lab) startAgent(name string) *agentProc {
	t := l.t
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", l.a, self)
	cmd.Env = append(os.Environ(), childEnv+"=agent", kubeconfigEnv+"="+l.api.Kubeconfig, nodeEnv+"=node-a",
		agentNameEnv+"="+name, hostNSEnv+"="+fmt.Sprintf("/proc/%d/ns/net", os.Getpid()))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &agentProc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.exited) }()
	t.Cleanup(func() { p.kill(t) })
	return p
}

// kill ends the agent by its PID with SIGKILL: a crash, nothing cleaned.
func (p *agentProc) kill(t testing.TB) { p.signal(t, syscall.SIGKILL) }

func (p *agentProc) signal(t testing.TB, sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Errorf("agent %s (pid %d) still running 15 s after %v", p.name, p.cmd.Process.Pid, sig)
	}
}

// connect is one TCP handshake from B to A's listener: its duration, or
// the error.
func (l *lab) connect(timeout time.Duration) (time.Duration, error) {
	var took time.Duration
	err := netlab.InNetNSAt(l.nsPath(l.b), func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp4", l.listenAddr, timeout)
		took = time.Since(start)
		if err == nil {
			c.Close()
		}
		return err
	})
	return took, err
}

// medianRTT is the median of n handshakes.
func (l *lab) medianRTT(n int) time.Duration {
	l.t.Helper()
	var ds []time.Duration
	for range n {
		d, err := l.connect(5 * time.Second)
		require.NoError(l.t, err)
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[n/2]
}

// iptablesS is namespace A's `iptables -S` of a table.
func (l *lab) iptablesS(table string) string {
	return sh(l.t, "ip", "netns", "exec", l.a, "iptables", "-w", "-t", table, "-S")
}

// count is how many lines of A's table contain every one of words.
func (l *lab) count(table string, words ...string) int {
	n := 0
	for line := range strings.Lines(l.iptablesS(table)) {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(line, w) }) {
			n++
		}
	}
	return n
}

// wait injects-or-recovers then waits for the agent to report gen; it
// returns how long the agent took from the write.
func (l *lab) wait(gen int64, start time.Time, agent string) Status {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(l.t.Context(), time.Minute)
	defer cancel()
	for {
		st, err := l.client.WaitApplied(ctx, "node-a", gen)
		require.NoError(l.t, err)
		if agent == "" || st.Agent == agent {
			l.t.Logf("generation %d applied by %s in %s: %v", gen, st.Agent, time.Since(start).Round(time.Millisecond), st.Applied)
			return st
		}
		select {
		case <-ctx.Done():
			l.t.Fatalf("agent %s never reported generation %d (last: %+v)", agent, gen, st)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestAgentLab(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	node := "node-a"

	_, err := l.connect(2 * time.Second)
	require.NoError(t, err, "A and B talk before any fault")

	a1 := l.startAgent("agent-1")
	// the first status: nothing desired yet, the agent reports generation 0
	l.wait(0, time.Now(), "agent-1")

	// isolate: B cannot reach A
	start := time.Now()
	gen, err := l.client.Inject(ctx, node, Rule{ID: "cut", Kind: Isolate, Peers: []string{l.addrB}})
	require.NoError(t, err)
	st := l.wait(gen, start, "")
	require.Equal(t, []string{"cut"}, st.Applied)
	_, err = l.connect(time.Second)
	require.Error(t, err, "isolated: the handshake fails")

	// idempotent: the same rule again changes nothing
	again, err := l.client.Inject(ctx, node, Rule{ID: "cut", Kind: Isolate, Peers: []string{l.addrB + "/32"}})
	require.NoError(t, err)
	require.Equal(t, gen, again, "an unchanged rule is not written again")

	// a crash leaves the fault; a new agent adopts it without duplicating
	a1.kill(t)
	_, err = l.connect(time.Second)
	require.Error(t, err, "a killed agent leaves the fault in place")
	a2 := l.startAgent("agent-2")
	st = l.wait(gen, time.Now(), "agent-2")
	require.Equal(t, []string{"cut"}, st.Applied)
	require.Equal(t, 1, l.count("filter", "-N "+chainPrefix), "one rule chain:\n%s", l.iptablesS("filter"))
	require.Equal(t, 1, l.count("filter", "-A "+baseChain+" ", "-j "+chainPrefix), "one jump:\n%s", l.iptablesS("filter"))
	for _, h := range hooks("filter") {
		require.Equal(t, 1, l.count("filter", "-A "+h+" ", "-j "+baseChain), "one hook in %s", h)
	}
	_, err = l.connect(time.Second)
	require.Error(t, err, "still isolated under the new agent")

	// drift: a hook removed by hand (a firewall reload) is put back at
	// the next resync (5 s here)
	sh(t, "ip", "netns", "exec", l.a, "iptables", "-w", "-D", "INPUT", "-j", baseChain)
	require.Eventually(t, func() bool { return l.count("filter", "-A INPUT ", "-j "+baseChain) == 1 },
		30*time.Second, 200*time.Millisecond, "the hook is repaired")
	_, err = l.connect(time.Second)
	require.Error(t, err, "isolated again after the repair")

	// recovered while no agent runs: the next agent removes it at start
	a2.signal(t, syscall.SIGTERM)
	_, err = l.connect(time.Second)
	require.Error(t, err, "a stopped agent leaves the fault in place")
	start = time.Now()
	gen, err = l.client.Recover(ctx, node, "cut")
	require.NoError(t, err)
	a3 := l.startAgent("agent-3")
	st = l.wait(gen, start, "agent-3")
	require.Empty(t, st.Applied)
	require.Equal(t, 0, l.count("filter", "-N "+chainPrefix), "the rule's chain is gone")
	_, err = l.connect(2 * time.Second)
	require.NoError(t, err, "recovered: traffic flows")

	// latency on A's egress to B: the handshake's SYN-ACK is held
	base := l.medianRTT(5)
	const delay = 100 * time.Millisecond
	start = time.Now()
	gen, err = l.client.Inject(ctx, node, Rule{ID: "slow", Kind: Latency, Peers: []string{l.addrB}, Delay: Duration(delay)})
	require.NoError(t, err)
	l.wait(gen, start, "")
	slow := l.medianRTT(5)
	t.Logf("handshake: %s without delay, %s with %s", base, slow, delay)
	require.Greater(t, slow, base+delay*6/10, "clearly delayed")
	require.Less(t, slow, base+delay*5, "about the delay, not a timeout")

	// a crash while delaying: the new agent binds the chain's queue again
	a3.kill(t)
	a4 := l.startAgent("agent-4")
	st = l.wait(gen, time.Now(), "agent-4")
	require.Equal(t, []string{"slow"}, st.Applied)
	require.Equal(t, 1, l.count("mangle", "-N "+chainPrefix), "one chain after a restart:\n%s", l.iptablesS("mangle"))
	require.Equal(t, 1, l.count("mangle", "-A POSTROUTING ", "-j "+baseChain), "one hook")
	slow = l.medianRTT(5)
	t.Logf("handshake after the restart: %s", slow)
	require.Greater(t, slow, base+delay*6/10, "delayed again by the new agent")

	// changing the rule replaces its chain, with no second one left
	gen, err = l.client.Inject(ctx, node, Rule{ID: "slow", Kind: Latency, Peers: []string{l.addrB}, Delay: Duration(delay / 2)})
	require.NoError(t, err)
	l.wait(gen, time.Now(), "")
	require.Equal(t, 1, l.count("mangle", "-N "+chainPrefix), "one chain after a change:\n%s", l.iptablesS("mangle"))

	// RecoverAll heals it
	gens, err := l.client.RecoverAll(ctx)
	require.NoError(t, err)
	l.wait(gens[node], time.Now(), "")
	require.Less(t, l.medianRTT(5), base+delay/4, "undelayed after RecoverAll")

	// a rule with an expiry time is lifted then by the agent itself, with
	// no Recover (what frees a node its own rules cut off the API server)
	expires := time.Now().Add(2 * time.Second)
	gen, err = l.client.Inject(ctx, node, Rule{ID: "temp", Kind: Isolate, Peers: []string{l.addrB}, Expires: &expires})
	require.NoError(t, err)
	st = l.wait(gen, time.Now(), "")
	require.Equal(t, []string{"temp"}, st.Applied)
	_, err = l.connect(time.Second)
	require.Error(t, err, "cut until it expires")
	require.Eventually(t, func() bool { _, err := l.connect(200 * time.Millisecond); return err == nil }, 15*time.Second, 100*time.Millisecond,
		"the agent lifts an expired rule by itself")
	t.Logf("an isolate lifted %s after its expiry time", time.Since(expires).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		st, err := l.client.Applied(ctx, node)
		return err == nil && slices.Equal(st.Expired, []string{"temp"}) && len(st.Applied) == 0
	}, 10*time.Second, 100*time.Millisecond, "the status says it expired")
	gen, err = l.client.Recover(ctx, node, "temp")
	require.NoError(t, err)
	l.wait(gen, time.Now(), "")

	// Cleanup removes every chain: leave one fault, stop the agent, clean
	gen, err = l.client.Inject(ctx, node, Rule{ID: "cut", Kind: Isolate, Peers: []string{l.addrB}})
	require.NoError(t, err)
	l.wait(gen, time.Now(), "")
	_, err = l.connect(time.Second)
	require.Error(t, err)
	a4.signal(t, syscall.SIGTERM)
	l.cleanup()
	for _, table := range []string{"filter", "mangle"} {
		s := l.iptablesS(table)
		require.NotContains(t, s, baseChain, "after Cleanup")
		require.NotContains(t, s, chainPrefix, "after Cleanup")
	}
	_, err = l.connect(2 * time.Second)
	require.NoError(t, err, "traffic flows after Cleanup")
}

// cleanup runs Cleanup in namespace A, as `chaosloop down` would on a node.
func (l *lab) cleanup() {
	self, err := os.Executable()
	require.NoError(l.t, err)
	cmd := exec.Command("ip", "netns", "exec", l.a, self)
	cmd.Env = append(os.Environ(), childEnv+"=cleanup")
	out, err := cmd.CombinedOutput()
	require.NoError(l.t, err, "%s", out)
	l.t.Logf("cleanup: %s", out)
}
