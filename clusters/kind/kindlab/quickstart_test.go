package kindlab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/runner"
	"github.com/chaosloop/chaosloop/runner/runnertest"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// quickstartRate is TestQuickstartOnK3s's offered load, transfers/s.
const quickstartRate = 50

// TestQuickstartOnK3s is `chaosloop run scenarios/kind-quickstart.yaml
// --on k3s` in deploy mode on a kind cluster of the quickstart's twelve
// nodes used as a real one, with one control plane (dc2-cp: see
// oneControlPlane): chaosloop deploys every service (its own etcd,
// KRaft Kafka, Galera, the document store, Redis with its Sentinels, the
// handlers as worker pods) from images on the nodes (as a registry pull
// would leave them), drives 50 transfers/s (quickstartRate) through the
// handlers' nodes' agents, powers rack dc1/r1 (dc1-cp, dc1-kafka,
// dc1-db) off and on through Redfish (sushy-tools, each system the node's
// container), and cuts site dc3 off. As on the labs: PASS, every check
// scored; then afterTheLoad.
//
// chaosloop reaches the API through dc2-cp's API server at its address
// on kind's network, as an adopter's would through a load balancer.
func TestQuickstartOnK3s(t *testing.T) {
	kindtest.Daemon(t)
	ctx := t.Context()
	log := enginetest.Log(t)
	b := &images.Builder{Cache: kindtest.Cache, Log: log}
	built, err := b.Build(ctx)
	require.NoError(t, err)
	sc, err := scenarios.Parse("../../../scenarios/kind-quickstart.yaml")
	require.NoError(t, err)
	// The machine's share, not the scenario's: on k3s every transfer's
	// client traffic (Kafka, the ledger, Redis) goes through the agents'
	// relays (API server, kubelet, agent) instead of --on kind's direct
	// network, and at 100/s this 2-core machine's load average reached
	// 60-85 after site dc3's heal: the pipeline did not recover within
	// 45 s (stop 32's CI; again on 2026-12-05 with every quorum held).
	*sc.Load.Rate = quickstartRate
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	ev := enginetest.NewEvidence(t)
	c := clusterUp(t, oneControlPlane(t, "dc2-cp"), built.Node, ev)

	deployAgents(t, c, sc.Name)
	tags := engineImagesOnNodes(t, c, b, topo)

	kc, err := k3s.Connect(log, k3s.Access{Kubeconfig: throughNode(t, c, "dc2-cp"), Context: c.KubeContext()})
	require.NoError(t, err)
	labelled(t, kc, topo)
	var rack []bmctest.Machine
	for _, n := range c.Plan.Nodes {
		if n.Site == "dc1" && n.Rack == "r1" {
			rack = append(rack, bmctest.Machine{Node: n.Name, Container: n.Container})
		}
	}
	require.Len(t, rack, 3)
	power, bmcLogs := bmctest.RedfishInventory(t, rack...)
	cctx, cancel := context.WithCancel(ctx)
	cabled := make(chan struct{})
	go func() { defer close(cabled); c.Cable(cctx, 200*time.Millisecond) }()
	defer func() { cancel(); <-cabled }()

	o := k3slab.Options{Cluster: kc, Log: enginetest.ProcessLog(), PortOffset: deploy.DefaultPortOffset, BMC: power, Load: true,
		Image: func(engine string) (string, error) {
			if tags[engine] == "" {
				return "", fmt.Errorf("no image of %s in this test", engine)
			}
			return tags[engine], nil
		}}
	t.Cleanup(func() {
		if t.Failed() {
			keepMemberLogs(t, c, sc.Name, ev.Sub("members"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		td, err := deploy.Down(ctx, kc, sc.Name)
		require.NoError(t, err)
		t.Logf("deploy.Down: stopped %d pods, wiped %v", len(td.Pods), td.Wiped)
	})
	start := time.Now()
	res, err := runner.Run(ctx, runner.Options{Scenario: sc, Provider: k3slab.NewProvider(o), RunsDir: ev.Sub("runs"), Seed: 1,
		Log: enginetest.ProcessLog()})
	require.NoError(t, err)
	rep := res.Report
	t.Logf("run --on k3s kind-quickstart.yaml: %s in %s (exit %d), %s", rep.Verdict, time.Since(start).Round(time.Second), rep.ExitCode, res.Dir)
	runnertest.LogReport(t, rep)
	for _, m := range rack {
		cycled, err := bmctest.PowerCycled(bmcLogs[m.Node])
		require.NoError(t, err)
		require.True(t, cycled, "%s went off and on through its BMC", m.Node)
	}
	require.Empty(t, rep.Observing, "the run drove the load")
	for _, c := range rep.Checks {
		require.NotEqual(t, checks.Skip, c.Status, "%s: %s", c.ID, c.Summary)
	}
	require.Equal(t, checks.Pass, rep.Verdict, "%s", strings.Join(rep.Why, "\n"))
	afterTheLoad(t, c, kc, topo)
}

// afterTheLoad: the run stopped the handlers' workers and kept their logs
// on their nodes; each KRaft broker's storage was formatted for its
// node.id on its node; no one-shot pod is left, and down stops the
// members' 24 pods (3 etcd, 3 Kafka, 3 Galera, 3 of each of the document
// store's three, 2 of each Redis member) and wipes their nodes.
func afterTheLoad(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, topo *topology.Topology) {
	ctx := t.Context()
	root := deploy.Root(topo.Name)
	sel, err := k3s.OwnedSelector(topo.Name)
	require.NoError(t, err)
	workers, err := kc.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel + "," + deploy.LabelService + "=handlers"})
	require.NoError(t, err)
	require.Empty(t, workers.Items, "the run stopped its workers")
	onNodes(t, c, memberNodes(topo, "handlers"), func(i int) (string, string) {
		return fmt.Sprintf("test -s %s/handlers-%d/log/worker.log && echo kept", root, i), "kept"
	})
	brokerStorage(t, c, topo.Name, memberNodes(topo, "kafka"), "node.id")
	td := deployedDown(t, kc, topo.Name, 24)
	require.Empty(t, td.Stranded)
	require.Len(t, td.Wiped, len(topo.Nodes))
}

// memberNodes are the nodes of service's members, in member order.
func memberNodes(topo *topology.Topology, service string) []string {
	var out []string
	for _, n := range topo.Service(service).Members {
		out = append(out, n.Name)
	}
	return out
}

// oneControlPlane is kind-quickstart.yaml as the scenario of a cluster
// whose only control plane is node keep: the pool K3S-CONTROL-PLANE has
// that node alone, and the k3s-etcd service (chaosloop deploys its own in
// deploy mode) goes on a pool of the three. Two runs on the three control
// planes the scenario gives (session 22) FAILED on this 2-core machine
// because kind's own etcd, three members under a load average of 25-50,
// timed the agents' and chaosloop's API requests out; the run itself
// scores the scenario as it is, on these nodes relabelled (labelled).
func oneControlPlane(t *testing.T, keep string) *scenarios.Scenario {
	sc, err := scenarios.Parse("../../../scenarios/kind-quickstart.yaml")
	require.NoError(t, err)
	const etcdPool = "K3S-ETCD"
	moved := 0
	for si := range sc.Sites {
		for ri := range sc.Sites[si].Racks {
			for ni := range sc.Sites[si].Racks[ri].Nodes {
				n := &sc.Sites[si].Racks[ri].Nodes[ni]
				if i := slices.Index(n.Pools, kindlab.ControlPlanePool); i >= 0 {
					n.Pools = append(n.Pools, etcdPool)
					if n.Name != keep {
						n.Pools = slices.Delete(n.Pools, i, i+1)
					}
					moved++
				}
			}
		}
	}
	require.Equal(t, 3, moved)
	for i := range sc.Services {
		if sc.Services[i].Pool == kindlab.ControlPlanePool {
			sc.Services[i].Pool = etcdPool
		}
	}
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	require.Len(t, kindlab.ControlPlaneNodes(topo), 1)
	return sc
}

// labelled gives the cluster's nodes topo's labels, as `chaosloop label
// --on k3s` would, and logs what it changed.
func labelled(t *testing.T, kc *k3s.Cluster, topo *topology.Topology) {
	log := enginetest.Log(t)
	r, err := k3s.Check(t.Context(), log, kc, topo, nil)
	require.NoError(t, err)
	var b strings.Builder
	r.Plan.WriteText(&b)
	t.Logf("relabelled for the scenario:\n%s", b.String())
	require.NoError(t, k3s.Apply(t.Context(), log, kc, r.Plan))
	r, err = k3s.Check(t.Context(), log, kc, topo, nil)
	require.NoError(t, err)
	require.True(t, r.Plan.Empty(), "every node carries its scenario labels")
}

// keepMemberLogs copies the logs of the members chaosloop deployed
// (k3s.DataRoot/SCENARIO/MEMBER/log on their nodes) into dir, a tar per
// node, before deploy.Down wipes them.
func keepMemberLogs(t *testing.T, c *kindlab.Cluster, scenario, dir string) {
	for _, n := range c.Plan.Nodes {
		root := filepath.Join(k3s.DataRoot, scenario)
		out, err := exec.Command("docker", "exec", n.Container, "sh", "-c",
			"cd "+root+" 2>/dev/null && tar -cz $(ls -d */log 2>/dev/null)").Output()
		if err != nil || len(out) == 0 {
			continue
		}
		_ = os.WriteFile(filepath.Join(dir, n.Name+"-logs.tgz"), out, 0o644)
	}
}

// engineImagesOnNodes loads the image of each service chaosloop deploys
// into its members' nodes only (the agents' image, the workers', is on
// every node already), and returns the tags by engine image name.
func engineImagesOnNodes(t *testing.T, c *kindlab.Cluster, b *images.Builder, topo *topology.Topology) map[string]string {
	tags := map[string]string{}
	for _, e := range b.Engines() {
		tags[e.Name] = e.Tag()
	}
	start := time.Now()
	for _, sv := range topo.Services {
		name, err := deploy.ImageOf(sv)
		if err != nil {
			continue // the handlers: worker pods from the agents' image
		}
		var nodes []kindlab.NodePlan
		for _, m := range sv.Members {
			n, ok := c.Plan.Node(m.Name)
			require.True(t, ok, m.Name)
			nodes = append(nodes, n)
		}
		require.NoError(t, c.LoadImageInto(t.Context(), tags[name], nodes))
	}
	t.Logf("engine images loaded into their members' nodes in %s", time.Since(start).Round(time.Second))
	return tags
}

// throughNode is a copy of the cluster's kubeconfig whose server is
// node's API server, at its container's address on the Docker network
// (management's, off the lab), by the name every API server's
// certificate holds.
func throughNode(t *testing.T, c *kindlab.Cluster, node string) string {
	n, ok := c.Plan.Node(node)
	require.True(t, ok)
	require.True(t, n.ControlPlane, "%s runs an API server", node)
	out, err := docker.Run(t.Context(), "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n.Container)
	require.NoError(t, err, "%s", out)
	addr := strings.TrimSpace(string(out))
	require.True(t, strings.HasPrefix(addr, "198.1"), "%s's container at %q, on kind's network", node, addr)
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig())
	require.NoError(t, err)
	for _, cl := range cfg.Clusters {
		cl.Server = fmt.Sprintf("https://%s:6443", addr)
		cl.TLSServerName = "kubernetes"
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}
