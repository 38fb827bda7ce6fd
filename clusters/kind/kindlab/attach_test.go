package kindlab_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/k3s/probe"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/runner"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// adopterEtcdNodes are the nodes of testdata/attach-etcd.yaml's etcd, in
// member order.
var adopterEtcdNodes = []string{"dc1-cp", "dc1-w", "dc2-w"}

// adopterEtcd deploys an etcd of "the adopter's" on three nodes, the way
// an adopter's own manifests would (a headless Service, pods that find
// their peers by DNS, the etcd image the cluster's control plane runs),
// and waits until chaosloop's probe sees it whole. chaosloop creates none
// of it: it attaches (testdata/attach-etcd.yaml). It returns an observe
// func: the service as k3s.Attached finds it, probed.
func adopterEtcd(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster) func() k3s.AttachedService {
	ctx := t.Context()
	sc, err := scenarios.Parse("testdata/attach-etcd.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	out, err := c.Kubectl(ctx, []byte(adopterEtcdManifest()), "apply", "-f", "-")
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := c.Kubectl(ctx, nil, "delete", "namespace", "adopter", "--timeout=2m")
		require.NoError(t, err, "%s", out)
	})
	// its etcd clients may log after the test: not through t
	prober := probe.New(kc, enginetest.ProcessLog())
	t.Cleanup(func() { require.NoError(t, prober.Close()) })
	// observe runs in Eventually's goroutine: a failed list is a service
	// seen with no pod, not a FailNow
	observe := func() k3s.AttachedService {
		services, err := k3s.Attached(ctx, kc, topo, nil)
		if err != nil || len(services) != 1 {
			return k3s.AttachedService{Service: "etcd", NotProbed: fmt.Sprintf("%d services attached, %v", len(services), err)}
		}
		prober.ProbeAll(ctx, topo, services)
		return services[0]
	}
	start := time.Now()
	last := waitWhole(t, observe, "the adopter's etcd turns whole")
	require.Empty(t, last.Findings, "its pods are where the scenario places them")
	t.Logf("adopter's etcd whole in %s: %s", time.Since(start).Round(time.Second), describe(last))
	return observe
}

// describe is an attached service's probe, one member a field.
func describe(as k3s.AttachedService) string {
	if as.Engine == nil {
		return fmt.Sprintf("%d pods, not probed: %s", len(as.Members), as.NotProbed)
	}
	return fmt.Sprintf("writable=%v %s", as.Engine.Writable, as.Engine.Summary())
}

// adopterEtcdManifest: a pod per node (pinned, as a StatefulSet with a
// node affinity per ordinal would be) named etcd-0.. in the scenario's
// member order, each reachable as etcd-N.etcd.adopter.svc.
func adopterEtcdManifest() string {
	var peers []string
	for i := range adopterEtcdNodes {
		peers = append(peers, fmt.Sprintf("etcd-%d=http://etcd-%d.etcd.adopter.svc.cluster.local:2380", i, i))
	}
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Namespace
metadata: {name: adopter}
---
apiVersion: v1
kind: Service
metadata: {name: etcd, namespace: adopter}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app.kubernetes.io/name: etcd}
  ports: [{name: client, port: 2379}, {name: peer, port: 2380}]
`)
	for i, node := range adopterEtcdNodes {
		host := fmt.Sprintf("etcd-%d.etcd.adopter.svc.cluster.local", i)
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata: {name: etcd-%d, namespace: adopter, labels: {app.kubernetes.io/name: etcd}}
spec:
  nodeName: %s
  hostname: etcd-%d
  subdomain: etcd
  tolerations: [{operator: Exists}]
  containers:
    - name: etcd
      image: registry.k8s.io/etcd:%s-0
      imagePullPolicy: Never
      command:
        - etcd
        - --name=etcd-%d
        - --data-dir=/data/etcd
        - --listen-client-urls=http://0.0.0.0:2379
        - --advertise-client-urls=http://%s:2379
        - --listen-peer-urls=http://0.0.0.0:2380
        - --initial-advertise-peer-urls=http://%s:2380
        - --initial-cluster=%s
        - --initial-cluster-state=new
        - --initial-cluster-token=adopter
      volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`, i, node, i, k8sbin.EtcdVersion, i, host, host, strings.Join(peers, ","))
	}
	return b.String()
}

// attachedRuns is `chaosloop run --on k3s` in attach mode on the
// adopter's etcd (adopterEtcd; the scenario's agents running): no load,
// the etcd sampled through the scenario's faults and its quorum judged
// against analyze. poweredRun isolates node/dc2-w, which analyze says
// leaves the etcd writable (degraded), then powers dc2-w's rack off
// through Redfish: PASS; stoppedRun: a stop condition ends a run.
// testdata/attach-etcd-kills.yaml, the negative control, kills two of the
// three members at once (their pods deleted, gone for good: no
// controller makes them anew), which leaves no quorum: FAIL. It runs
// last, since it breaks the etcd. pods are the echo pods, whose
// addresses poweredRun reads again.
func attachedRuns(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, observe func() k3s.AttachedService, pods map[string]pod, from string) {
	runs := enginetest.NewEvidence(t).Sub("runs")
	// IPMI's power is scored in deploy mode's destroy run (deployedRuns)
	poweredRun(t, c, kc, runs, observe, pods, from, bmc.Redfish)
	pausedRun(t, c, kc, runs, observe)
	stoppedRun(t, c, kc, runs, observe, from)
	scoredRun(t, kc, runs, "attach-etcd-kills.yaml", nil, checks.Fail)
}

// pausedRun: testdata/attach-etcd-pauses.yaml pauses two of the three
// members at once: the agents of their nodes freeze their pods' cgroups.
// The etcd has no quorum while both are frozen, as analyze predicts:
// FAIL, which only a freeze that bites can give. Thawed at recovery, the
// etcd is whole again and no agent keeps a mark of a frozen pod.
func pausedRun(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, runs string, observe func() k3s.AttachedService) {
	quorum := scoredRun(t, kc, runs, "attach-etcd-pauses.yaml", nil, checks.Fail)
	require.True(t, slices.ContainsFunc(quorum.Findings, func(f checks.Finding) bool {
		return strings.Contains(f.Message, "active: pause service/etcd/0, pause service/etcd/1") && strings.Contains(f.Message, "quorum lost, as analyze predicts")
	}), "the quorum lost while both members were frozen")
	start := time.Now()
	seen := waitWhole(t, observe, "the adopter's etcd whole again once thawed")
	t.Logf("adopter's etcd whole again %s after the run: %s", time.Since(start).Round(time.Second), describe(seen))
	for _, node := range adopterEtcdNodes {
		out, err := c.Exec(t.Context(), node, "ls -A "+agent.StateDir)
		require.NoError(t, err, "%s", out)
		require.Empty(t, strings.TrimSpace(string(out)), "node %s: no pod left marked frozen", node)
	}
}

// scoredRun runs testdata/file on the cluster (attach mode), power
// through the BMCs of power (nil: none), and wants verdict want from the
// quorum check, every other check skipped, every fault put in.
func scoredRun(t *testing.T, kc *k3s.Cluster, runs, file string, power *bmc.Inventory, want checks.Status) *checks.Result {
	return scoredRunOn(t, k3slab.Options{Cluster: kc, BMC: power, Log: enginetest.ProcessLog()}, runs, file, want)
}

// scoredRunOn is scoredRun with the backend's options o.
func scoredRunOn(t *testing.T, o k3slab.Options, runs, file string, want checks.Status) *checks.Result {
	sc, err := scenarios.Parse(filepath.Join("testdata", file))
	require.NoError(t, err)
	p := k3slab.NewProvider(o)
	start := time.Now()
	res, err := runner.Run(t.Context(), runner.Options{Scenario: sc, Provider: p, RunsDir: runs, Seed: 1,
		Log: enginetest.ProcessLog(), Converge: 20 * time.Second})
	require.NoError(t, err)
	rep := res.Report
	quorum := rep.Check(checks.CheckQuorum)
	require.NotNil(t, quorum)
	t.Logf("run --on k3s %s: %s in %s (exit %d); quorum %s: %s", file, rep.Verdict, time.Since(start).Round(time.Second), rep.ExitCode, quorum.Status, quorum.Summary)
	for _, f := range quorum.Findings {
		t.Logf("  %s: %s", f.Severity, f.Message)
	}
	require.Equal(t, want, rep.Verdict, "%s", strings.Join(rep.Why, "\n"))
	require.Equal(t, want, quorum.Status)
	require.Equal(t, k3slab.Observing, rep.Observing)
	for _, c := range rep.Checks {
		if c.ID != checks.CheckQuorum {
			require.Equal(t, checks.Skip, c.Status, "%s: %s", c.ID, c.Summary)
		}
	}
	require.NotZero(t, quorum.Counts["samplesCompared"])
	for _, f := range rep.Faults {
		require.True(t, f.Injected, "%s %s went in", f.Action, f.Target)
	}
	return quorum
}

// poweredRun: testdata/attach-etcd-power.yaml isolates node/dc2-w (the
// agents' rules), then powers rack dc2/r1 (dc2-w) off during a run and
// on again through its BMC, as an adopter's BMCs would, over protocol:
// sushy-tools (Redfish), whose system is dc2-w's
// container (ForceOff kills it, On starts it), or ipmi_sim (IPMI), whose
// chassis is; Cable keeps the container on the lab's network when it
// starts again, as a server's cables stay through a power cycle. The
// etcd keeps its quorum in dc1, as analyze predicts: PASS. Then dc2-w's
// kubelet and pods come back by themselves: the etcd turns whole, and the
// echo pods' addresses (a restarted pod's is a new one) are read again
// into pods.
func poweredRun(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, runs string, observe func() k3s.AttachedService, pods map[string]pod, from string, protocol bmc.Protocol) {
	power, log, uncable := powered(t, c, protocol)
	defer uncable()
	t.Logf("power of dc2-w through %s", protocol)
	scoredRun(t, kc, runs, "attach-etcd-power.yaml", power, checks.Pass)
	cycled, err := bmctest.PowerCycled(log)
	require.NoError(t, err, "dc2-w's BMC never powered its container")
	require.True(t, cycled, "dc2-w went off and on through its BMC (%s)", protocol)

	start := time.Now()
	waitReady(t, c, "dc2-w", true, 3*time.Minute)
	seen := waitWhole(t, observe, "the adopter's etcd whole again after the power-on")
	t.Logf("%s: adopter's etcd whole again %s after the run: %s", protocol, time.Since(start).Round(time.Second), describe(seen))
	echoAgain(t, c, pods, from)
}

// powered powers dc2-w through a BMC of protocol's emulator whose
// machine is dc2-w's node container, cabled to the lab's network again
// whenever it starts until uncable is called, and returns the inventory
// and the BMC's log.
func powered(t *testing.T, c *kindlab.Cluster, protocol bmc.Protocol) (power *bmc.Inventory, log string, uncable func()) {
	n, ok := c.Plan.Node("dc2-w")
	require.True(t, ok)
	inventory := map[bmc.Protocol]func(*testing.T, ...bmctest.Machine) (*bmc.Inventory, map[string]string){
		bmc.Redfish: bmctest.RedfishInventory, bmc.IPMI: bmctest.IPMIInventory}[protocol]
	power, logs := inventory(t, bmctest.Machine{Node: "dc2-w", Container: n.Container})
	cctx, cancel := context.WithCancel(t.Context())
	cabled := make(chan struct{})
	go func() { defer close(cabled); c.Cable(cctx, 200*time.Millisecond) }()
	return power, logs["dc2-w"], func() { cancel(); <-cabled }
}

// echoAgain reads the echo pods' addresses again into pods once dc2-w's
// answers (a pod restarted with its node's power has a new address).
func echoAgain(t *testing.T, c *kindlab.Cluster, pods map[string]pod, from string) {
	ctx := t.Context()
	var again map[string]pod
	require.Eventually(t, func() bool {
		out, err := c.Kubectl(ctx, nil, "get", "pods", "-l", "app=echo", "-o", echoPodsJSONPath)
		if err != nil {
			return false
		}
		again = echoPods(string(out))
		p, ok := again["dc2-w"]
		return ok && len(again) == len(pods) && echo(ctx, c, from, p.ip.String(), 8080, "dc2-w") == nil
	}, 3*time.Minute, time.Second, "dc2-w's echo pod answers again")
	maps.Copy(pods, again)
}

// stoppedRun: the stop conditions watch a run on a real cluster. During
// testdata/attach-etcd-stop.yaml's isolation of dc2-w, dc1-w's kubelet is
// stopped once the run has found the etcd healthy: dc1-w NotReady, which
// no fault concerns, stops the run (lab.ErrStopped, exit 5 in the CLI)
// with every fault recovered; dc2-w NotReady, the fault's, does not.
func stoppedRun(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, runs string, observe func() k3s.AttachedService, from string) {
	ctx := t.Context()
	sc, err := scenarios.Parse("testdata/attach-etcd-stop.yaml")
	require.NoError(t, err)
	var once sync.Once
	var stoppedAt time.Time
	kubeletStopped := make(chan error, 1)
	p := k3slab.NewProvider(k3slab.Options{Cluster: kc, Log: enginetest.ProcessLog(), Progress: func(pr lab.Progress) {
		if pr.Service == "etcd" && pr.Stage == "healthy" {
			once.Do(func() {
				stoppedAt = time.Now()
				_, err := c.Exec(ctx, "dc1-w", "systemctl stop kubelet")
				kubeletStopped <- err
			})
		}
	}})
	start := time.Now()
	res, err := runner.Run(ctx, runner.Options{Scenario: sc, Provider: p, RunsDir: runs, Seed: 1,
		Log: enginetest.ProcessLog(), Converge: 20 * time.Second})
	select {
	case kerr := <-kubeletStopped:
		require.NoError(t, kerr)
	default:
		t.Fatalf("the run never found the etcd healthy, so dc1-w's kubelet was not stopped: %v", err)
	}
	require.ErrorIs(t, err, lab.ErrStopped)
	require.Contains(t, err.Error(), "node/dc1-w")
	require.NotContains(t, err.Error(), "node/dc2-w", "dc2-w is the fault's")
	require.Contains(t, err.Error(), "every fault recovered")
	t.Logf("run --on k3s stopped %s after dc1-w's kubelet stopped (run %s): %v", time.Since(stoppedAt).Round(time.Second), time.Since(start).Round(time.Second), err)
	require.NotNil(t, res.Report, "judged on what it saw")
	active, err := nemesis.Active(ctx, kc, sc.Name)
	require.NoError(t, err)
	require.Empty(t, active, "every fault recovered")

	_, err = c.Exec(ctx, "dc1-w", "systemctl start kubelet")
	require.NoError(t, err)
	waitReady(t, c, "dc1-w", true, 3*time.Minute)
	waitReady(t, c, "dc2-w", true, 3*time.Minute)
	require.Eventually(t, func() bool {
		_, err := c.Kubectl(ctx, nil, "exec", from, "--", "true")
		return err == nil
	}, 2*time.Minute, time.Second, "dc1-w's kubelet serves its pods again")
	waitWhole(t, observe, "the adopter's etcd whole again")
}

// waitWhole waits (3 min at most) until observe finds the adopter's etcd
// healthy, and returns what it saw.
func waitWhole(t *testing.T, observe func() k3s.AttachedService, why string) k3s.AttachedService {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		seen := observe()
		switch {
		case seen.Healthy():
			return seen
		case time.Now().After(deadline):
			t.Fatalf("%s: not within 3m; last seen %s", why, describe(seen))
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", why, t.Context().Err())
		case <-time.After(time.Second):
		}
	}
}
