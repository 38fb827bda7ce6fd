package fault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

const scenario = "../../../../clusters/k3s/testdata/faults.yaml" // name: k3stest

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// fault and heal --on k3s: what they refuse and with which exit status,
// before or without acting; and down refuses to delete while a power
// fault's record is the only way to power its nodes on again.
func TestFaultAndHealOnK3s(t *testing.T) {
	s := apitest.Start(t)
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fault", "isolate", "site/dc2", "--on", "k3s", "--context", s.Context, "--kubeconfig", s.Kubeconfig}, cli.ExitInvalid, "--on k3s needs the scenario FILE"},
		{append([]string{"fault", scenario, "isolate", "site/dc2"}, "--on", "k3s", "--kubeconfig", s.Kubeconfig), cli.ExitInvalid, "no context named"},
		{append([]string{"fault", scenario, "power-off", "rack/dc1/r1"}, flags...), cli.ExitInvalid, "no BMC for node(s) dc1-cp, dc1-w"},
		{append([]string{"fault", scenario, "kill", "service/handlers/0"}, flags...), cli.ExitFail, "service handlers is not attached (services[].attach)"},
		{append([]string{"fault", scenario, "pause", "service/handlers/0"}, flags...), cli.ExitFail, "pause service/handlers/0: service handlers is not attached (services[].attach)"},
		{append([]string{"fault", scenario, "isolate", "site/dc2", "--for", "0s"}, flags...), cli.ExitInvalid, "--for must be positive"},
		{[]string{"fault", "isolate", "site/dc2", "--context", "x"}, cli.ExitInvalid, "are for --on k3s"},
		{[]string{"heal", "--context", "x"}, cli.ExitInvalid, "are for --on k3s"},
	} {
		code, out, errs := run(tc.args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, "%v", tc.args)
		require.Empty(t, out, "%v", tc.args)
	}

	// heal with nothing in place
	code, out, errs := run(append([]string{"heal", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Equal(t, "every fault recovered\n", out)

	// a power fault recorded (as a crashed chaosloop would leave it): down
	// keeps everything and says how to heal it
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	owned, err := k3s.OwnedLabels("k3stest")
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k3s.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps(k3s.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: nemesis.StateName("k3stest"), Labels: owned},
		Data:       map[string]string{"faults.json": `[{"action":"power-off","target":"rack/dc1/r1","since":"2026-12-03T03:00:00Z"}]`},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	code, _, errs = run(append([]string{"down", scenario, "--yes"}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	require.Contains(t, errs, "power faults are in place (power-off rack/dc1/r1); nothing deleted: heal them first")
	_, err = cs.CoreV1().ConfigMaps(k3s.Namespace).Get(ctx, nemesis.StateName("k3stest"), metav1.GetOptions{})
	require.NoError(t, err, "kept")
}

// lockedBuffer is a Buffer a test reads while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// holdCluster is an API server with testdata/faults.yaml's nodes Ready
// (dc1-cp the control plane), one node the scenario does not name, and
// stand-ins for the agents of scenario k3stest.
func holdCluster(t *testing.T) (*apitest.Server, kubernetes.Interface) {
	return k3stest.WithAgents(t, "k3stest", append(k3stest.TwoSites(), k3stest.Node{Name: "other", IP: "198.18.30.1"}), "dc1-cp", "dc1-w", "dc2-w")
}

// holding runs fault --hold in the background; the returned function
// waits for its end.
func holding(t *testing.T, args ...string) (out, errs *lockedBuffer, wait func() int) {
	out, errs = &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: out, Err: errs}, args)
	}()
	return out, errs, func() int {
		select {
		case code := <-done:
			return code
		case <-time.After(2 * time.Minute):
			t.Fatalf("fault --hold did not end; stdout:\n%s\nstderr:\n%s", out, errs)
			return -1
		}
	}
}

// fault --hold: a node the fault does not concern turning NotReady stops
// it, recovers every fault of the scenario (one injected before too) and
// exits 5 with the reason; a node the fault cuts off turning NotReady
// does not.
func TestHoldStopsOnANodeOutsideTheFault(t *testing.T) {
	s, cs := holdCluster(t)
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	code, _, errs := run(append([]string{"fault", scenario, "latency", "link/dc1/dc2", "--delay", "20ms"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)

	out, stderr, wait := holding(t, append([]string{"fault", scenario, "isolate", "site/dc2", "--hold", "--for", "10m"}, flags...)...)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watching 4 nodes") }, time.Minute, 50*time.Millisecond, "%s", stderr)
	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionUnknown)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "node/dc2-w NotReady (Ready=Unknown") }, time.Minute, 50*time.Millisecond)
	k3stest.SetReady(t, cs, "other", corev1.ConditionFalse)
	require.Equal(t, cli.ExitStopped, wait(), "stdout:\n%s\nstderr:\n%s", out, stderr)
	require.Contains(t, stderr.String(), "stop condition at ")
	require.Contains(t, stderr.String(), "node/other (Ready=False, KubeletNotReady) NotReady, and no fault in place concerns it")
	require.Contains(t, stderr.String(), "every fault of the scenario recovered")

	active, err := nemesis.Active(t.Context(), mustConnect(t, s), "k3stest")
	require.NoError(t, err)
	require.Empty(t, active, "both faults recovered")
	ac := &agent.Client{Kube: cs, Scenario: "k3stest"}
	for _, node := range []string{"dc1-cp", "dc1-w", "dc2-w"} {
		rules, _, err := ac.Rules(t.Context(), node)
		require.NoError(t, err)
		require.Empty(t, rules, node)
	}
}

// fault --hold with nothing outside the plan: the fault is recovered once
// --for has passed, exit 0; a usage check refuses --hold off k3s.
func TestHoldRecoversAfterFor(t *testing.T) {
	s, cs := holdCluster(t)
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	out, stderr, wait := holding(t, append([]string{"fault", scenario, "isolate", "node/dc1-w", "--hold", "--for", "3s"}, flags...)...)
	require.Equal(t, cli.ExitOK, wait(), "stdout:\n%s\nstderr:\n%s", out, stderr)
	require.Contains(t, out.String(), "isolate node/dc1-w: in place on context")
	require.Contains(t, out.String(), "isolate node/dc1-w: recovered")
	active, err := nemesis.Active(t.Context(), mustConnect(t, s), "k3stest")
	require.NoError(t, err)
	require.Empty(t, active)
	rules, _, err := (&agent.Client{Kube: cs, Scenario: "k3stest"}).Rules(t.Context(), "dc1-w")
	require.NoError(t, err)
	require.Empty(t, rules)

	code, _, errs := run("fault", "isolate", "node/dc1-w", "--hold")
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, errs, "--hold is for --on k3s")
}

func mustConnect(t *testing.T, s *apitest.Server) *k3s.Cluster {
	c, err := k3s.Connect(slog.New(slog.DiscardHandler), k3s.Access{Kubeconfig: s.Kubeconfig, Context: s.Context})
	require.NoError(t, err)
	return c
}

// status --on k3s shows what fault put in place: the rule on each node,
// applied, with its expiry, and the fault recorded; exit 1 once a
// scenario node is not Ready. It changes nothing.
func TestStatusShowsWhatIsInPlace(t *testing.T) {
	s, cs := holdCluster(t)
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	code, out, errs := run(append([]string{"status", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "no fault in place")

	code, _, errs = run(append([]string{"fault", scenario, "isolate", "node/dc1-w", "--for", "7m"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	code, out, errs = run(append([]string{"status", scenario}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Regexp(t, `dc1-w +dc1-w +Ready +running +isolate\.node\.dc1-w \(applied, expires \d\d:\d\d:\d\d\)`, out)
	require.Regexp(t, `(?m)^isolate node/dc1-w +\d{4}-`, out)

	code, out, errs = run(append([]string{"status", scenario, "-o", "json"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	var st nemesis.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Faults, 1)
	require.Len(t, st.Nodes, 3)
	for _, n := range st.Nodes {
		require.True(t, n.Agent, n.Node)
		require.Len(t, n.Rules, 1, n.Node)
		require.True(t, n.Rules[0].Applied, n.Node)
		require.WithinDuration(t, st.Faults[0].Since.Add(7*time.Minute), *n.Rules[0].Expires, 5*time.Second)
	}

	k3stest.SetReady(t, cs, "dc2-w", corev1.ConditionUnknown)
	code, out, _ = run(append([]string{"status", scenario}, flags...)...)
	require.Equal(t, cli.ExitFail, code)
	require.Regexp(t, `dc2-w +dc2-w +Ready=Unknown`, out)

	code, _, errs = run("status", scenario, "--context", s.Context)
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, errs, "are for --on k3s")
}

// status --on k3s of a scenario with attached services: each member's pod,
// its node against the scenario's, Ready and restarts; the differences as
// findings; exit 1 while a member is not Ready.
func TestStatusOfAttachedServices(t *testing.T) {
	s, cs := holdCluster(t)
	k3stest.AdopterPods(t, cs)
	const attach = "../../../../clusters/k3s/testdata/attach.yaml"
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	code, out, errs := run(append([]string{"status", attach}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	// no kubelet here runs the pods' containers: the probe finds none
	// running (kindlab's test probes a real one through port-forward)
	require.Regexp(t, `etcd +0 +adopter/etcd-0 +dc1-cp +dc1-cp +Ready +0 +down: not running\n`, out)
	require.Contains(t, out, "etcd: etcd does NOT take writes\n")
	require.Regexp(t, `handlers +1 +adopter/handlers-1 +dc1-w +dc2-w +Ready=False, ContainersNotReady +4`, out)
	require.Regexp(t, `handlers +10 +adopter/handlers-10 +dc2-w +- +Ready +0`, out)
	require.Contains(t, out, "handlers: 3 pods match, the scenario has 2 members\n")
	require.Contains(t, out, "handlers: member 1 (pod handlers-1) runs on node/dc1-w, the scenario places it on node/dc2-w\n")

	code, out, errs = run(append([]string{"status", attach, "-o", "json"}, flags...)...)
	require.Equal(t, cli.ExitFail, code, errs)
	var st nemesis.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Services, 2)
	require.Equal(t, "handlers-10", st.Services[1].Members[2].Pod)
	require.NotNil(t, st.Services[0].Engine, "etcd is probed")
	require.False(t, st.Services[0].Engine.Writable)
	require.Nil(t, st.Services[1].Engine, "a stateless service has no engine to probe")
	require.Empty(t, st.Services[1].NotProbed)
}

// fault kill --on k3s of an attached member deletes its pod, only its;
// the member must be named; heal forgets the kill (the pod's controller
// makes a new one).
func TestKillAnAttachedMember(t *testing.T) {
	s, cs := holdCluster(t)
	k3stest.AdopterPods(t, cs)
	const attach = "../../../../clusters/k3s/testdata/attach.yaml"
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	for _, tc := range []struct{ target, want string }{
		{"service/handlers", "name the member (service/handlers/INDEX): which pod is drawn is not known"},
		{"service/handlers/leader", "which pod is the leader is not known"},
	} {
		code, _, errs := run(append([]string{"fault", attach, "kill", tc.target}, flags...)...)
		require.Equal(t, cli.ExitFail, code, errs)
		require.Contains(t, errs, tc.want)
	}
	// pods not being deleted (with no kubelet here to confirm it, a
	// deleted pod stays, terminating, as on a node that is down)
	pods := func() []string {
		list, err := cs.CoreV1().Pods("adopter").List(t.Context(), metav1.ListOptions{})
		require.NoError(t, err)
		var names []string
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				names = append(names, p.Name)
			}
		}
		return names
	}
	code, out, errs := run(append([]string{"fault", attach, "kill", "service/handlers/1"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "kill service/handlers/1: in place")
	require.ElementsMatch(t, []string{"etcd-0", "etcd-backup", "handlers-0", "handlers-10", "other-0"}, pods())
	active, err := nemesis.Active(t.Context(), mustConnect(t, s), "k3sattach")
	require.NoError(t, err)
	require.Len(t, active, 1)

	code, _, errs = run(append([]string{"heal", attach, "kill", "service/handlers/1"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	active, err = nemesis.Active(t.Context(), mustConnect(t, s), "k3sattach")
	require.NoError(t, err)
	require.Empty(t, active)
	require.Len(t, pods(), 5, "heal deletes nothing")
}

// fault pause --on k3s of an attached member has the agent of the node
// its pod runs on (dc1-w for handlers-1, which the scenario places on
// dc2-w) freeze that pod, by UID; heal has it thawed.
func TestPauseAnAttachedMember(t *testing.T) {
	s, cs := k3stest.WithAgents(t, "k3sattach", k3stest.TwoSites(), "dc1-cp", "dc1-w", "dc2-w")
	k3stest.AdopterPods(t, cs)
	const attach = "../../../../clusters/k3s/testdata/attach.yaml"
	flags := []string{"--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context}
	ac := &agent.Client{Kube: cs, Scenario: "k3sattach"}
	frozen := func(node string) []string {
		rules, _, err := ac.Rules(t.Context(), node)
		require.NoError(t, err)
		var pods []string
		for _, r := range rules {
			require.Equal(t, agent.Freeze, r.Kind, r.ID)
			pods = append(pods, r.Pods...)
		}
		return pods
	}
	uid := func(name string) string {
		p, err := cs.CoreV1().Pods("adopter").Get(t.Context(), name, metav1.GetOptions{})
		require.NoError(t, err)
		return string(p.UID)
	}

	code, out, errs := run(append([]string{"fault", attach, "pause", "service/handlers/1"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Contains(t, out, "pause service/handlers/1: in place")
	require.Equal(t, []string{uid("handlers-1")}, frozen("dc1-w"), "frozen where the pod runs")
	require.Empty(t, frozen("dc2-w"))

	code, _, errs = run(append([]string{"heal", attach, "pause", "service/handlers/1"}, flags...)...)
	require.Equal(t, cli.ExitOK, code, errs)
	require.Empty(t, frozen("dc1-w"), "thawed")
	active, err := nemesis.Active(t.Context(), mustConnect(t, s), "k3sattach")
	require.NoError(t, err)
	require.Empty(t, active)
}

// run --on k3s (attach mode) refuses, before it touches the cluster, a
// scenario whose services it cannot observe, and an unnamed context.
func TestRunOnK3sRefusals(t *testing.T) {
	s := apitest.Start(t)
	const attach = "../../../../clusters/k3s/testdata/attach.yaml"
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"run", scenario, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--runs-dir", dir}, cli.ExitInvalid,
			[]string{"service handlers is not attached (services[].attach): chaosloop runs a stateless service's workers only when it drives the load, which it does when it deploys every service (--registry given, none attached)"}},
		{[]string{"run", "../../../../scenarios/quickstart.yaml", "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--runs-dir", dir}, cli.ExitInvalid,
			[]string{"service central-ledger-db is not attached", "service kafka is not attached",
				"service k3s-etcd is not attached (services[].attach): chaosloop deploys it from --registry, which was not given"}},
		{[]string{"run", attach, "--registry", "registry.lab:5000", "--runs-dir", dir}, cli.ExitInvalid, []string{"--registry and --port-offset work with --on k3s"}},
		{[]string{"run", attach, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--port-offset", "40000", "--runs-dir", dir}, cli.ExitInvalid,
			[]string{"--port-offset must be from 0 to 38518"}},
		{[]string{"run", attach, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--context", s.Context, "--registry", "registry", "--runs-dir", dir}, cli.ExitInvalid,
			[]string{`registry "registry": want HOST[:PORT][/PATH]`}},
		{[]string{"run", attach, "--on", "k3s", "--kubeconfig", s.Kubeconfig, "--runs-dir", dir}, cli.ExitInvalid, []string{"no context named"}},
		{[]string{"run", attach, "--context", s.Context, "--runs-dir", dir}, cli.ExitInvalid, []string{"--kubeconfig, --context and --node-map work with --on k3s"}},
	} {
		code, _, errs := run(tc.args...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		for _, w := range tc.want {
			require.Contains(t, errs, w, "%v", tc.args)
		}
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no run directory for a refused run")
}
