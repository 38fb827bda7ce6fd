package kindlab_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/chaosmesh"
	"github.com/chaosloop/chaosloop/chaosmesh/meshtest"
	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/guard"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

func TestMain(m *testing.M) { kindtest.Main(m) }

// stateRoot holds the test's lab state at a fixed place, so that a run
// killed half-way is removed by the next.
const stateRoot = "/var/lib/chaosloop/kindlab-test"

// TestScenarioCluster stands each test scenario up as a kind cluster on
// its lab network: every node Ready under its scenario name on its lab
// address, a pod on each, pods reaching each other across sites and
// through a Service; then isolating dc2 cuts its pods off and turns its
// node NotReady, and healing brings both back. With three control-plane
// nodes, isolating the first leaves every other node Ready: their load
// balancers moved to the other API servers.
func TestScenarioCluster(t *testing.T) {
	kindtest.Daemon(t)
	built, err := (&images.Builder{Cache: kindtest.Cache, Log: enginetest.Log(t)}).Build(context.Background())
	require.NoError(t, err)
	for i, file := range []string{"two-sites.yaml", "three-control-planes.yaml"} {
		t.Run(strings.TrimSuffix(file, ".yaml"), func(t *testing.T) {
			testScenario(t, built, filepath.Join("testdata", file), i == 0)
		})
	}
}

// testScenario stands file's cluster up and checks it; asReal also runs
// an engine's members as pods on it (memberPods) and uses it as "a real
// cluster" through its kubeconfig (asARealCluster, nodeAgent).
//
// A cluster of more than one control plane is checked only for what
// they add (loseFirstControlPlane): its pods' network is the same as
// two-sites', and each check costs minutes of the kind suite's time on
// a 2-core CI machine.
func testScenario(t *testing.T, built *images.Built, file string, asReal bool) {
	ev := enginetest.NewEvidence(t)
	ctx := context.Background()
	sc, err := scenarios.Parse(file)
	require.NoError(t, err)
	c := clusterUp(t, sc, built.Node, ev)

	checkNodes(t, c)
	if len(c.Plan.ControlPlanes()) > 1 {
		loseFirstControlPlane(t, c)
		return
	}
	pods := runEchoPods(t, c)
	for _, n := range c.Plan.Nodes {
		require.True(t, n.PodCIDR.Contains(pods[n.Name].ip), "pod on %s has %s", n.Name, pods[n.Name].ip)
	}
	// pod to pod, both ways across the WAN, and through the Service
	dc1, dc2 := siteNode(c, "dc1", 1), siteNode(c, "dc2", 0)
	require.NoError(t, echo(ctx, c, pods[dc1].name, pods[dc2].ip.String(), 8080, dc2))
	require.NoError(t, echo(ctx, c, pods[dc2].name, pods[c.Plan.Nodes[0].Name].ip.String(), 8080, c.Plan.Nodes[0].Name))
	checkService(t, c, pods[c.Plan.Nodes[0].Name].name)
	stats(t, c)
	if asReal {
		t.Run("AsARealCluster", func(t *testing.T) { asARealCluster(t, c) })
		t.Run("MemberPods", func(t *testing.T) { memberPods(t, c, filepath.Join(stateRoot, sc.Name), built) })
		t.Run("NodeAgent", func(t *testing.T) { nodeAgent(t, c, pods) })
	}

	// cut dc2 off: its pod is out of reach at once, its node NotReady
	// after the controller's grace period
	isolated := time.Now()
	require.NoError(t, c.Net.IsolatePath(ctx, "site/dc2"))
	require.Error(t, echo(ctx, c, pods[dc1].name, pods[dc2].ip.String(), 8080, dc2))
	notReady := waitReady(t, c, dc2, false, 3*time.Minute)
	t.Logf("%s NotReady %s after the isolation of dc2", dc2, notReady.Sub(isolated).Round(time.Second))
	requireReadyBut(t, c, dc2)

	healed := time.Now()
	require.NoError(t, c.Net.HealPath(ctx, "site/dc2"))
	require.NoError(t, echo(ctx, c, pods[dc1].name, pods[dc2].ip.String(), 8080, dc2))
	back := waitReady(t, c, dc2, true, 2*time.Minute)
	t.Logf("%s Ready again %s after the heal", dc2, back.Sub(healed).Round(time.Second))
}

// loseFirstControlPlane isolates the node kubeadm init ran on: once the
// controller (on another node now) marks it NotReady, every other node
// is still Ready — their kubelets kept reaching an API server.
func loseFirstControlPlane(t *testing.T, c *kindlab.Cluster) {
	ctx := context.Background()
	first := c.Plan.Nodes[0].Name
	cut := time.Now()
	require.NoError(t, c.Net.IsolatePath(ctx, "node/"+first))
	notReady := waitReady(t, c, first, false, 3*time.Minute)
	t.Logf("%s NotReady %s after its isolation", first, notReady.Sub(cut).Round(time.Second))
	requireReadyBut(t, c, first)
	healed := time.Now()
	require.NoError(t, c.Net.HealPath(ctx, "node/"+first))
	back := waitReady(t, c, first, true, 3*time.Minute)
	t.Logf("%s Ready again %s after the heal", first, back.Sub(healed).Round(time.Second))
}

// clusterUp brings sc's cluster up with its state under stateRoot, and
// removes it when the test ends, the nodes' logs kept in ev first if the
// test failed.
func clusterUp(t *testing.T, sc *scenarios.Scenario, image string, ev *enginetest.Evidence) *kindlab.Cluster {
	log := enginetest.Log(t)
	dir := freshStateDir(t, sc.Name)
	start := time.Now()
	c, err := kindlab.Up(context.Background(), sc, kindlab.Options{Image: image, StateDir: dir, Log: log, Wait: 5 * time.Minute})
	t.Cleanup(func() {
		if t.Failed() && c != nil {
			keepLogs(t, c, ev.Sub("logs"))
		}
		require.NoError(t, kindlab.Down(context.Background(), log, dir))
		require.NoError(t, os.RemoveAll(dir))
	})
	require.NoError(t, err)
	t.Logf("cluster of %d nodes up (every node Ready) in %s", len(c.Plan.Nodes), time.Since(start).Round(time.Second))
	return c
}

// freshStateDir is a scenario's state directory under stateRoot, with
// what a killed run left there removed.
func freshStateDir(t *testing.T, scenario string) string {
	dir := filepath.Join(stateRoot, scenario)
	if _, err := os.Stat(dir); err == nil {
		t.Logf("removing a previous run's cluster: %v", kindlab.Down(context.Background(), enginetest.Log(t), dir))
		require.NoError(t, os.RemoveAll(dir))
	}
	return dir
}

// siteNode is the i-th node of a site (the last when it has fewer).
func siteNode(c *kindlab.Cluster, site string, i int) string {
	var names []string
	for _, n := range c.Plan.Nodes {
		if n.Site == site {
			names = append(names, n.Name)
		}
	}
	return names[min(i, len(names)-1)]
}

// requireReadyBut: every node but one is Ready.
func requireReadyBut(t *testing.T, c *kindlab.Cluster, but string) {
	ready, err := c.Ready(context.Background())
	require.NoError(t, err)
	for _, n := range c.Plan.Nodes {
		if n.Name != but {
			require.True(t, ready[n.Name], "%s stays Ready: %v", n.Name, ready)
		}
	}
}

// checkNodes: every node has its scenario name, its lab address as its
// only InternalIP, its labels and pod /24; dc2's node talks to the API
// servers at lab addresses (its load balancer's connections) or on its
// own loopback, never over docker's network.
func checkNodes(t *testing.T, c *kindlab.Cluster) {
	ctx := context.Background()
	for _, n := range c.Plan.Nodes {
		ip := kubectl(t, c, "get", "node", n.Name, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
		require.Equal(t, n.Addr.String(), ip, "node %s", n.Name)
		zone := kubectl(t, c, "get", "node", n.Name, "-o", `jsonpath={.metadata.labels.topology\.kubernetes\.io/zone}`)
		require.Equal(t, n.Labels["topology.kubernetes.io/zone"], zone)
		cidr := kubectl(t, c, "get", "node", n.Name, "-o", "jsonpath={.spec.podCIDR}")
		require.Equal(t, n.PodCIDR.String(), cidr)
	}
	cp := c.Plan.Nodes[0]
	w, _ := c.Plan.Node(siteNode(c, "dc2", 0))
	out, err := c.Net.Exec(ctx, w.Name, "ss", "-Htn", "state", "established", "( dport = :6443 )")
	require.NoError(t, err)
	var peers []netip.AddrPort
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			peers = append(peers, netip.MustParseAddrPort(f[len(f)-1]))
		}
	}
	lab := 0
	for _, p := range peers {
		// a control-plane node's own components may use its loopback
		require.True(t, p.Addr().IsLoopback() || netlab.LabPrefix().Contains(p.Addr()) && !cluster.NetworkSubnet.Contains(p.Addr()),
			"%s reaches an API server at %s: not a lab address", w.Name, p)
		if !p.Addr().IsLoopback() {
			lab++
		}
	}
	require.NotZero(t, lab, "%s has no connection to an API server's lab address: %v", w.Name, peers)
	t.Logf("%s's connections to API servers: %v", w.Name, peers)
	route, err := c.Net.Exec(ctx, w.Name, "ip", "-4", "route", "get", cp.PodCIDR.Addr().Next().String())
	require.NoError(t, err)
	t.Logf("%s → %s's pods: %s", w.Name, cp.Name, strings.TrimSpace(string(route)))
	require.Contains(t, string(route), "dev lab0")
}

type pod struct {
	name string
	ip   netip.Addr
}

// echoManifest: a pod on every node (control plane included) answering
// each TCP connection with its node's name (perl from the kube-proxy
// image's Debian), and a Service over them.
var echoManifest = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      tolerations: [{operator: Exists}]
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: registry.k8s.io/kube-proxy:` + k8sbin.KubernetesVersion + `
        imagePullPolicy: Never
        command: [perl, -MIO::Socket::INET, -e, '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 64, ReuseAddr => 1) or die "listen: $!"; while (1) { $c = $s->accept or next; print $c "$ENV{NODE}\n"; close $c }']
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`

func runEchoPods(t *testing.T, c *kindlab.Cluster) map[string]pod {
	ctx := context.Background()
	require.Eventually(t, func() bool {
		_, err := c.Kubectl(ctx, nil, "get", "serviceaccount", "default")
		return err == nil
	}, time.Minute, time.Second)
	out, err := c.Kubectl(ctx, []byte(echoManifest), "apply", "-f", "-")
	require.NoError(t, err, "%s", out)
	kubectl(t, c, "rollout", "status", "daemonset/echo", "--timeout=180s")
	lines := kubectl(t, c, "get", "pods", "-l", "app=echo", "-o", echoPodsJSONPath)
	pods := echoPods(lines)
	require.Len(t, pods, len(c.Plan.Nodes), "pods: %s", lines)
	return pods
}

// echoPodsJSONPath lists the echo pods for echoPods.
const echoPodsJSONPath = `jsonpath={range .items[*]}{.spec.nodeName} {.metadata.name} {.status.podIP}{"\n"}{end}`

// echoPods are the echo pods by node, from kubectl's echoPodsJSONPath
// output; a pod with no address yet is left out.
func echoPods(lines string) map[string]pod {
	pods := map[string]pod{}
	for _, l := range strings.Split(lines, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		if ip, err := netip.ParseAddr(f[2]); err == nil {
			pods[f[0]] = pod{name: f[1], ip: ip}
		}
	}
	return pods
}

// echo connects from inside a pod to addr:port and wants want back.
func echo(ctx context.Context, c *kindlab.Cluster, from, addr string, port int, want string) error {
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && cat <&3", addr, port)
	out, err := c.Kubectl(ctx, nil, "exec", from, "--", "timeout", "3", "bash", "-c", script)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(out)); want != "" && got != want {
		return fmt.Errorf("%s:%d from %s answered %q, want %q", addr, port, from, got, want)
	}
	return nil
}

// checkService: the Service's ClusterIP reaches the pods of every node
// (kube-proxy's rules, across sites), and CoreDNS turns Ready (it reaches
// the API through the kubernetes Service).
//
// A pod that just turned Ready is reached through the Service only once
// every node's kube-proxy has its endpoint: the answers are gathered over
// rounds until every node's pod has answered (measured: the time it took),
// within a bound.
func checkService(t *testing.T, c *kindlab.Cluster, from string) {
	ip := kubectl(t, c, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
	script := fmt.Sprintf("for i in $(seq 15); do timeout 3 bash -c 'exec 3<>/dev/tcp/%s/80 && cat <&3'; done | sort -u", ip)
	var all []string
	for _, n := range c.Plan.Nodes {
		all = append(all, n.Name)
	}
	seen := map[string]bool{}
	start := time.Now()
	for rounds := 1; ; rounds++ {
		out, err := c.Kubectl(context.Background(), nil, "exec", from, "--", "bash", "-c", script)
		require.NoError(t, err, "%s", out)
		for _, name := range strings.Fields(string(out)) {
			seen[name] = true
		}
		if len(seen) == len(all) {
			t.Logf("every node's pod answered through the Service after %d round(s), %s", rounds, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 2*time.Minute {
			require.ElementsMatch(t, all, slices.Sorted(maps.Keys(seen)), "answers through the Service")
		}
	}
	kubectl(t, c, "-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=kube-dns", "--timeout=180s")
}

// waitReady waits for a node's Ready condition to become want and
// returns when it was seen.
func waitReady(t *testing.T, c *kindlab.Cluster, node string, want bool, wait time.Duration) time.Time {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ready, err := c.Ready(context.Background())
		if err == nil && ready[node] == want {
			return time.Now()
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("node %s not Ready=%v after %s", node, want, wait)
	return time.Time{}
}

// stats logs each node container's memory.
func stats(t *testing.T, c *kindlab.Cluster) {
	args := []string{"stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"}
	for _, n := range c.Plan.Nodes {
		args = append(args, n.Container)
	}
	out, err := docker.Run(context.Background(), args...)
	require.NoError(t, err)
	t.Logf("memory:\n%s", out)
}

func kubectl(t *testing.T, c *kindlab.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(context.Background(), nil, args...)
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// keepLogs saves kind's logs of every node, each container's own output
// (the entrypoint's lab wait) and the lab's state into dir.
func keepLogs(t *testing.T, c *kindlab.Cluster, dir string) {
	for _, n := range c.Plan.Nodes {
		out, _ := exec.Command("docker", "logs", n.Container).CombinedOutput()
		_ = os.WriteFile(filepath.Join(dir, n.Name+".docker.log"), out, 0o644)
	}
	if err := cluster.CollectLogs(enginetest.Log(t), c.Plan.Cluster, dir); err != nil {
		t.Logf("collect logs: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Net.StateDir(), "netlab.json")); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "netlab.json"), b, 0o644)
	}
}

// asARealCluster uses the cluster as --on k3s would use an adopter's,
// through the kubeconfig on this machine: a context must be named, plan
// only reads, label round-trips, down deletes only the scenario's own
// objects (k3stest); and with Chaos Mesh's CRDs installed, every object
// the Chaos Mesh export makes is accepted and stored as sent, and
// hand-broken ones are refused (meshtest).
func asARealCluster(t *testing.T, c *kindlab.Cluster) {
	t.Run("Safety", func(t *testing.T) { k3stest.RealCluster(t, c.Kubeconfig(), c.KubeContext()) })
	t.Run("ChaosMeshExport", func(t *testing.T) {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig()},
			&clientcmd.ConfigOverrides{CurrentContext: c.KubeContext()}).ClientConfig()
		require.NoError(t, err)
		meshtest.Accepts(t, cfg, func(t *testing.T, ns string) []meshtest.Case {
			var cases []meshtest.Case
			for _, file := range []string{"../../../scenarios/quickstart.yaml", "../../../scenarios/kind-quickstart.yaml", "../../../chaosmesh/testdata/every-action.yaml"} {
				sc, err := scenarios.Parse(file)
				require.NoError(t, err)
				ex, err := chaosmesh.Build(sc, chaosmesh.Options{Namespace: ns})
				require.NoError(t, err)
				cases = append(cases, meshtest.Case{Name: sc.Name, Workflow: ex.Workflow, Manifest: ex.Manifest()})
			}
			return cases
		})
	})
}

// deployAgents deploys the node agents of scenario as `up --on k3s`
// does on an adopter's cluster: their image built here from this tree's
// chaosloop and loaded into every node (as a registry pull would leave
// it), their DaemonSet, ServiceAccount and Role through the kubeconfig.
// It returns once an agent is Ready on every node; at the test's end no
// rule stays and the agents are gone.
func deployAgents(t *testing.T, c *kindlab.Cluster, scenario string) (kubernetes.Interface, *agent.Client, agent.Manifest) {
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "chaosloop")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	start := time.Now()
	tag, err := (&images.Builder{Cache: kindtest.Cache, Log: enginetest.Log(t)}).BuildAgent(ctx, bin)
	require.NoError(t, err)
	require.NoError(t, c.LoadImage(ctx, tag))
	t.Logf("agent image %s built and loaded in %s", tag, time.Since(start).Round(time.Millisecond))

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig()},
		&clientcmd.ConfigOverrides{CurrentContext: c.KubeContext()}).ClientConfig()
	require.NoError(t, err)
	kube, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	m, err := agent.NewManifest(tag, scenario)
	require.NoError(t, err)
	start = time.Now()
	require.NoError(t, agent.Deploy(ctx, kube, m))
	client := &agent.Client{Kube: kube, Log: enginetest.Log(t), Scenario: scenario}
	var names []string
	for _, n := range c.Plan.Nodes {
		names = append(names, n.Name)
	}
	require.NoError(t, client.WaitRunning(ctx, names, 3*time.Minute, nil), "an agent runs on every node")
	t.Logf("agent running on %d nodes in %s", len(c.Plan.Nodes), time.Since(start).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		ds, err := kube.AppsV1().DaemonSets(agent.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		return err == nil && ds.Status.DesiredNumberScheduled == int32(len(c.Plan.Nodes)) && ds.Status.NumberReady == ds.Status.DesiredNumberScheduled
	}, 3*time.Minute, time.Second, "and is Ready")
	t.Logf("agent ready on %d nodes in %s", len(c.Plan.Nodes), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		// the lab's own faults come next: no rule may stay
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		gens, err := client.RecoverAll(ctx)
		require.NoError(t, err)
		for node, gen := range gens {
			_, err := client.WaitApplied(ctx, node, gen)
			require.NoError(t, err)
		}
		if err := kube.AppsV1().DaemonSets(agent.Namespace).Delete(ctx, agent.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			require.NoError(t, err)
		}
	})
	return kube, client, m
}

// agentScenario labels the node agent's objects in nodeAgent.
const agentScenario = "kindlab"

// nodeAgent deploys the node agent as --on k3s would on an adopter's
// cluster (its image built here and loaded into the nodes, its
// DaemonSet, ServiceAccount and Role through the kubeconfig) and cuts
// and delays pod traffic through it: an isolate rule on dc2-w against
// dc1-w's address and pods cuts dc1-w's pod off dc2-w's while dc1-cp's
// still reaches it, and survives the agent's pod being deleted; a
// latency rule delays the TCP handshake by at least its delay; each is
// gone once recovered.
func nodeAgent(t *testing.T, c *kindlab.Cluster, pods map[string]pod) {
	ctx := t.Context()
	kube, client, m := deployAgents(t, c, agentScenario)
	require.NoError(t, agent.Deploy(ctx, kube, m), "deploying again changes nothing")
	apply := func(what string, gen int64, err error) {
		t.Helper()
		require.NoError(t, err)
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := client.WaitApplied(wctx, "dc2-w", gen)
		require.NoError(t, err)
		t.Logf("%s: applied by %s in %s (rules %v)", what, st.Agent, time.Since(start).Round(time.Millisecond), st.Applied)
	}
	var peerNode kindlab.NodePlan
	for _, n := range c.Plan.Nodes {
		if n.Name == "dc1-w" {
			peerNode = n
		}
	}
	peers := []string{peerNode.Addr.String(), peerNode.PodCIDR.String()}
	from, to := pods["dc1-w"].name, pods["dc2-w"].ip.String()

	gen, err := client.Inject(ctx, "dc2-w", agent.Rule{ID: "cut", Kind: agent.Isolate, Peers: peers})
	apply("isolate dc2-w from dc1-w", gen, err)
	require.Error(t, echo(ctx, c, from, to, 8080, "dc2-w"), "dc1-w's pod is cut off dc2-w's")
	require.NoError(t, echo(ctx, c, pods["dc1-cp"].name, to, 8080, "dc2-w"), "dc1-cp's pod still reaches it")

	// a new agent adopts the rule: the cut holds while it restarts
	old, err := client.Applied(ctx, "dc2-w")
	require.NoError(t, err)
	require.NoError(t, kube.CoreV1().Pods(agent.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + agent.Name, FieldSelector: "spec.nodeName=dc2-w"}))
	require.Error(t, echo(ctx, c, from, to, 8080, "dc2-w"), "the cut stays while the agent is replaced")
	require.Eventually(t, func() bool {
		st, err := client.Applied(ctx, "dc2-w")
		return err == nil && st.Error == "" && st.Agent != old.Agent && len(st.Applied) == 1
	}, 2*time.Minute, 200*time.Millisecond, "the new agent reports the rule applied")
	require.Error(t, echo(ctx, c, from, to, 8080, "dc2-w"), "the new agent keeps the cut")

	gen, err = client.Recover(ctx, "dc2-w", "cut")
	apply("recover the isolate", gen, err)
	require.NoError(t, echo(ctx, c, from, to, 8080, "dc2-w"))

	base := connectTime(t, c, from, to)
	const delay = 200 * time.Millisecond
	gen, err = client.Inject(ctx, "dc2-w", agent.Rule{ID: "slow", Kind: agent.Latency, Peers: peers, Delay: agent.Duration(delay)})
	apply("delay dc2-w's packets to dc1-w by 200ms", gen, err)
	delayed := connectTime(t, c, from, to)
	require.GreaterOrEqual(t, delayed, delay-5*time.Millisecond, "the SYN-ACK waits its delay")
	gen, err = client.Recover(ctx, "dc2-w", "slow")
	apply("recover the latency", gen, err)
	after := connectTime(t, c, from, to)
	require.Less(t, after, delay/2, "undelayed again")
	t.Logf("TCP handshake dc1-w pod -> dc2-w pod, fastest of 5: %s before, %s with the 200ms rule, %s after", base, delayed, after)

	// `fault --on k3s`'s way (nemesis): isolating node/dc2-w cuts it off
	// every other node, the control plane included — its kubelet goes
	// NotReady — while its agent's own connection passes, so it applies
	// the recovery at once
	kc, err := k3s.Connect(enginetest.Log(t), k3s.Access{Kubeconfig: c.Kubeconfig(), Context: c.KubeContext()})
	require.NoError(t, err)
	sc, err := scenarios.Parse("testdata/two-sites.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	nm := &nemesis.Nemesis{Cluster: kc, Topology: topo, Log: enginetest.Log(t), Lifetime: 10 * time.Minute, Wait: time.Minute}
	cut := lab.Fault{Action: "isolate", Target: "node/dc2-w"}
	// attach mode observes an etcd of the adopter's own through the fault
	observeEtcd := adopterEtcd(t, c, kc)
	// the stop conditions watch throughout (fault --hold's guard): dc2-w
	// cut off the control plane may turn NotReady
	g := &guard.Guard{Cluster: kc, Topology: topo, Log: enginetest.Log(t), Interval: time.Second,
		Faults: func() []lab.Injected { return []lab.Injected{{Fault: cut}} }}
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	gdone := make(chan error, 1)
	go func() { gdone <- g.Watch(gctx) }()
	start := time.Now()
	_, err = nm.Inject(ctx, cut)
	require.NoError(t, err)
	t.Logf("nemesis: isolate node/dc2-w in place (every agent confirmed) in %s", time.Since(start).Round(time.Millisecond))
	require.Error(t, echo(ctx, c, from, to, 8080, "dc2-w"))
	require.Error(t, echo(ctx, c, pods["dc1-cp"].name, to, 8080, "dc2-w"), "cut off the control plane's node too")
	// as analyze has it (isolate node/dc2-w: etcd degraded), the two
	// members in dc1 keep the quorum; dc2-w's answers no probe
	var etcdSeen k3s.AttachedService
	require.Eventually(t, func() bool {
		etcdSeen = observeEtcd()
		e := etcdSeen.Engine
		return e != nil && len(e.Members) == 3 && e.Writable && e.Members[0].Healthy && e.Members[1].Healthy && !e.Members[2].Healthy
	}, time.Minute, time.Second, "the adopter's etcd keeps its quorum in dc1: %s", describe(etcdSeen))
	t.Logf("adopter's etcd with dc2-w cut off, %s after the isolation: %s", time.Since(start).Round(time.Second), describe(etcdSeen))
	notReady := waitReady(t, c, "dc2-w", false, 3*time.Minute)
	t.Logf("dc2-w NotReady %s after the isolation: its kubelet is cut off", notReady.Sub(start).Round(time.Second))
	select {
	case err := <-gdone:
		t.Fatalf("the guard stopped for a node the fault cuts off: %v", err)
	default:
	}
	// that a node outside the fault NotReady is a stop, stoppedRun's run
	// shows (its guard is this one), as clusters/k3s/guard's tests do
	gcancel()
	require.NoError(t, <-gdone, "the guard ended only when told to")
	active, err := nm.ActiveFaults(ctx)
	require.NoError(t, err)
	require.Len(t, active, 1, "the fault is recorded in the cluster")
	start = time.Now()
	require.NoError(t, nm.Recover(ctx, cut))
	t.Logf("nemesis: recovered (every agent confirmed, dc2-w's through its exempt connection) in %s", time.Since(start).Round(time.Millisecond))
	require.NoError(t, echo(ctx, c, from, to, 8080, "dc2-w"))
	back := waitReady(t, c, "dc2-w", true, 3*time.Minute)
	t.Logf("dc2-w Ready again %s after the recovery", back.Sub(start).Round(time.Second))
	etcdSeen = waitWhole(t, observeEtcd, "the adopter's etcd whole again")
	t.Logf("adopter's etcd whole again %s after the recovery: %s", time.Since(start).Round(time.Second), describe(etcdSeen))

	// run --on k3s in attach mode: the etcd sampled through a schedule
	attachedRuns(t, c, kc, observeEtcd, pods, from)
	// run --on k3s in deploy mode: chaosloop's own etcd on the cluster
	deployedRuns(t, c, kc, pods, from)
	to = pods["dc2-w"].ip.String() // dc2-w's pod restarted with its power

	// down with a fault in place: the agents lift it before they go
	gen, err = client.Inject(ctx, "dc2-w", agent.Rule{ID: "cut", Kind: agent.Isolate, Peers: peers})
	apply("isolate dc2-w from dc1-w again", gen, err)
	require.Error(t, echo(ctx, c, from, to, 8080, "dc2-w"))
	rec, err := client.RecoverBeforeDown(ctx, time.Minute)
	require.NoError(t, err)
	require.Contains(t, rec.Recovered, "dc2-w")
	require.Empty(t, rec.Stranded)
	td, err := k3s.PlanDown(ctx, enginetest.Log(t), kc, agentScenario)
	require.NoError(t, err)
	require.NoError(t, td.Apply(ctx, enginetest.Log(t), kc))
	require.NoError(t, echo(ctx, c, from, to, 8080, "dc2-w"), "down left no cut behind")
	require.Eventually(t, func() bool {
		pods, err := kube.CoreV1().Pods(agent.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + agent.Name})
		return err == nil && len(pods.Items) == 0
	}, 2*time.Minute, time.Second, "down removed the agents")
	require.NoError(t, echo(ctx, c, from, to, 8080, "dc2-w"), "and their going left no cut either")
}

// connectTime is the fastest of five TCP handshakes from a pod to addr's
// echo port, timed in the pod (kubectl exec's own time is not in it).
func connectTime(t *testing.T, c *kindlab.Cluster, from, addr string) time.Duration {
	t.Helper()
	script := fmt.Sprintf(`for i in 1 2 3 4 5; do s=$(date +%%s%%N); exec 3<>/dev/tcp/%s/8080 || exit 1; e=$(date +%%s%%N); exec 3<&-; echo $(( (e-s)/1000 )); done`, addr)
	out, err := c.Kubectl(t.Context(), nil, "exec", from, "--", "timeout", "20", "bash", "-c", script)
	require.NoError(t, err, "%s", out)
	best := time.Hour
	for _, f := range strings.Fields(string(out)) {
		us, err := strconv.Atoi(f)
		require.NoError(t, err, "%s", out)
		best = min(best, time.Duration(us)*time.Microsecond)
	}
	return best
}
