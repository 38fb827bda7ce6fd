package nemesis

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent/agenttest"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// nodes of testdata/faults.yaml with their addresses and pod ranges.
var nodes = map[string][2]string{
	"dc1-cp": {"198.18.10.1", "198.19.128.0/24"},
	"dc1-w":  {"198.18.10.2", "198.19.129.0/24"},
	"dc2-w":  {"198.18.20.1", "198.19.130.0/24"},
}

// runAgents runs an agent on every node of the cluster and has them
// confirm what they are asked.
func runAgents(t *testing.T, cs kubernetes.Interface) {
	agenttest.RunAgents(t, cs, "k3stest", slices.Sorted(maps.Keys(nodes))...)
	agenttest.Confirm(t, cs)
}

func setup(t *testing.T) (*Nemesis, kubernetes.Interface) { return setupWith(t, "faults.yaml") }

func setupWith(t *testing.T, file string) (*Nemesis, kubernetes.Interface) {
	s := apitest.Start(t)
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	for name, a := range nodes {
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.NodeSpec{PodCIDR: a[1], PodCIDRs: []string{a[1]}}}, metav1.CreateOptions{})
		require.NoError(t, err)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: a[0]}, {Type: corev1.NodeHostName, Address: name}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	c, err := k3s.Connect(enginetest.Log(t), k3s.Access{Kubeconfig: s.Kubeconfig, Context: s.Context})
	require.NoError(t, err)
	sc, err := scenarios.Parse("../testdata/" + file)
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	return &Nemesis{Cluster: c, Topology: topo, Log: enginetest.Log(t), Wait: 5 * time.Second, Lifetime: time.Hour}, cs
}

// An isolation is recorded, then becomes agent rules on both sides
// against the other side's addresses and pod ranges, each expiring after
// the Lifetime; injecting it again changes nothing; recovering it empties
// the rules and forgets it.
func TestIsolateThroughTheAgents(t *testing.T) {
	n, cs := setup(t)
	ctx := t.Context()
	runAgents(t, cs)

	f := lab.Fault{Action: "isolate", Target: "site/dc2"}
	before := time.Now()
	inj, err := n.Inject(ctx, f)
	require.NoError(t, err)
	require.Equal(t, f, inj.Fault)
	ac := &agent.Client{Kube: cs, Scenario: "k3stest"}
	rules, _, err := ac.Rules(ctx, "dc2-w")
	require.NoError(t, err)
	require.Len(t, rules, 1)
	require.Equal(t, "isolate.site.dc2", rules[0].ID)
	require.Equal(t, []string{"198.18.10.1/32", "198.18.10.2/32", "198.19.128.0/24", "198.19.129.0/24"}, rules[0].Peers)
	require.WithinRange(t, *rules[0].Expires, before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))
	rules, _, err = ac.Rules(ctx, "dc1-w")
	require.NoError(t, err)
	require.Equal(t, []string{"198.18.20.1/32", "198.19.130.0/24"}, rules[0].Peers)

	again, err := n.Inject(ctx, f)
	require.NoError(t, err)
	require.Equal(t, inj.Since.Unix(), again.Since.Unix(), "already in place")
	active, err := n.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Len(t, active, 1)

	require.NoError(t, n.Recover(ctx, f))
	for node := range nodes {
		rules, _, err := ac.Rules(ctx, node)
		require.NoError(t, err)
		require.Empty(t, rules, node)
	}
	active, err = n.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Empty(t, active)
	require.NoError(t, n.Recover(ctx, f), "recovering what is not in place is nothing")
}

// A fault's rules go to all its nodes at once, not one node after the
// other: each node's desired state is held at the API server until every
// node's is in flight (or 3 s passed). One after the other, only one is
// ever in flight.
func TestRulesGoToEveryNodeAtOnce(t *testing.T) {
	n, cs := setup(t)
	ctx := t.Context()
	runAgents(t, cs)
	f := lab.Fault{Action: "isolate", Target: "site/dc2"}
	// the first time makes the desired states; the second only updates them
	_, err := n.Inject(ctx, f)
	require.NoError(t, err)
	require.NoError(t, n.Recover(ctx, f))

	desired := map[string]bool{}
	for node := range nodes {
		desired["/configmaps/"+agent.ConfigMapName(node)] = true
	}
	var (
		mu             sync.Mutex
		inFlight, most int
		once           sync.Once
	)
	all := make(chan struct{})
	cfg := rest.CopyConfig(n.Cluster.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			i := strings.LastIndex(r.URL.Path, "/configmaps/")
			if r.Method != http.MethodPut || i < 0 || !desired[r.URL.Path[i:]] {
				return rt.RoundTrip(r)
			}
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			if inFlight == len(nodes) {
				once.Do(func() { close(all) })
			}
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
			select {
			case <-all:
			case <-time.After(3 * time.Second):
			}
			return rt.RoundTrip(r)
		})
	}
	held, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	n.Cluster.Client = held
	_, err = n.Inject(ctx, f)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, len(nodes), most, "every node's rule in flight at once")
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Without agents to confirm, an injection fails but stays recorded, so
// that heal undoes what was done; kill and pause, and power without a
// BMC, are refused before anything is recorded.
func TestUnconfirmedAndRefused(t *testing.T) {
	n, cs := setup(t)
	ctx := t.Context()
	n.Wait = 300 * time.Millisecond
	f := lab.Fault{Action: "latency", Target: "link/dc1/dc2", Delay: 50 * time.Millisecond}
	agenttest.RunAgents(t, cs, "k3stest", "dc1-cp")
	_, err := n.Inject(ctx, f)
	require.ErrorContains(t, err, "no chaosloop agent of scenario k3stest runs on node(s) dc1-w: deploy the agent first")
	active, err := n.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Empty(t, active, "refused before it is recorded")

	agenttest.RunAgents(t, cs, "k3stest", "dc1-w")
	_, err = n.Inject(ctx, f)
	require.ErrorContains(t, err, "not applied")
	active, err = n.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Len(t, active, 1, "recorded before it acts")
	require.Equal(t, 50*time.Millisecond, active[0].Delay)

	_, err = n.Inject(ctx, lab.Fault{Action: "kill", Target: "service/handlers/0"})
	require.ErrorContains(t, err, "service handlers is not attached (services[].attach)")
	_, err = n.Inject(ctx, lab.Fault{Action: "power-off", Target: "rack/dc1/r1"})
	var noBMC *k3s.NoBMCError
	require.ErrorAs(t, err, &noBMC)
	require.Equal(t, []string{"dc1-cp", "dc1-w"}, noBMC.Nodes)
	_, err = n.Inject(ctx, lab.Fault{Action: "isolate", Target: "service/handlers/0"})
	require.ErrorContains(t, err, "isolate cannot target a service")
	active, err = n.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Len(t, active, 1, "refused faults are not recorded")
}

func TestRuleID(t *testing.T) {
	require.Equal(t, "latency.link.dc1.dc2", RuleID(lab.Fault{Action: "latency", Target: "link/dc1/dc2"}))
	long := RuleID(lab.Fault{Action: "isolate", Target: "rack/a-very-long-site-name-indeed/a-very-long-rack-name-as-well-x"})
	require.Len(t, long, 63)
	require.NotEqual(t, long, RuleID(lab.Fault{Action: "isolate", Target: "rack/a-very-long-site-name-indeed/a-very-long-rack-name-as-well-y"}))
}

// A deployed Redis member is two pods (its redis-server's and its
// Sentinel's): a pause freezes both, with one rule on their node; a kill
// signals both (TestKill in package agent, the kind tests). A one-shot
// command's pod of the member is not touched.
func TestDeployedMemberOfTwoPods(t *testing.T) {
	n, cs := setupWith(t, "deployed-redis.yaml")
	ctx := t.Context()
	runAgents(t, cs)
	// the namespace's default ServiceAccount, which no controller manager makes here
	_, err := cs.CoreV1().ServiceAccounts(k3s.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	p := &deploy.Pods{Scenario: "k3stest", Service: "cache", Image: "registry.example/engine-redis:v1"}
	m := engines.Member{Index: 1, Name: "cache-1", Node: "dc1-w", DataDir: deploy.Root("k3stest") + "/cache-1/data", LogDir: deploy.Root("k3stest") + "/cache-1/log"}
	uids := map[string]string{}
	for _, proc := range []string{"cache-1.redis", "cache-1.sentinel", "cache-1.chown"} {
		pod, err := p.Pod(m, proc2spec(proc, m))
		require.NoError(t, err)
		if proc == "cache-1.chown" {
			pod.Labels[deploy.LabelOnce] = "true"
		}
		made, err := cs.CoreV1().Pods(k3s.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		uids[proc] = string(made.UID)
	}

	pause := lab.Fault{Action: "pause", Target: "service/cache/1"}
	_, err = n.Inject(ctx, pause)
	require.NoError(t, err)
	ac := &agent.Client{Kube: cs, Scenario: "k3stest"}
	rules, _, err := ac.Rules(ctx, "dc1-w")
	require.NoError(t, err)
	require.Len(t, rules, 1)
	require.Equal(t, agent.Freeze, rules[0].Kind)
	require.ElementsMatch(t, []string{uids["cache-1.redis"], uids["cache-1.sentinel"]}, rules[0].Pods)
	require.NoError(t, n.Recover(ctx, pause))
	rules, _, err = ac.Rules(ctx, "dc1-w")
	require.NoError(t, err)
	require.Empty(t, rules)

	// a kill sends SIGKILL through the node's agent to the pods' running
	// containers (no kubelet runs them here: the redis-server's is made
	// running, and its agent, a fake, cannot exec); no pod is deleted
	redis, err := cs.CoreV1().Pods(k3s.Namespace).Get(ctx, "cache-1.redis", metav1.GetOptions{})
	require.NoError(t, err)
	redis.Status.Phase = corev1.PodRunning
	redis.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "cache-1.redis", ContainerID: "containerd://" + strings.Repeat("ab", 32),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	_, err = cs.CoreV1().Pods(k3s.Namespace).UpdateStatus(ctx, redis, metav1.UpdateOptions{})
	require.NoError(t, err)
	kill := lab.Fault{Action: "kill", Target: "service/cache/1"}
	_, err = n.Inject(ctx, kill)
	require.ErrorContains(t, err, "service/cache/1: SIGKILL to pod chaosloop/cache-1.redis")
	require.NotContains(t, err.Error(), "cache-1.sentinel", "a pod that runs no container is dead already")
	for _, proc := range []string{"cache-1.redis", "cache-1.sentinel", "cache-1.chown"} {
		pod, err := cs.CoreV1().Pods(k3s.Namespace).Get(ctx, proc, metav1.GetOptions{})
		require.NoError(t, err, "%s", proc)
		require.Nil(t, pod.DeletionTimestamp, "%s", proc)
	}
}

func proc2spec(name string, m engines.Member) proc.Spec {
	return proc.Spec{Name: name, Path: "redis-server", Dir: m.DataDir, User: "redis"}
}
