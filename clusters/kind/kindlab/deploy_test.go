package kindlab_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// deployedRuns is `chaosloop run --on k3s` in deploy mode on the kind
// cluster used as a real one: chaosloop deploys its own etcd
// (testdata/deploy-etcd.yaml has no services[].attach), a pod per member
// on its node in the node's network, at etcd's ports plus the offset
// (dc1-cp's 2379-2380 are kind's own etcd's), from the engine's image,
// and judges it through the scenario's faults: dc2-w cut off, then
// member 1 killed and started again at the fault's end, then dc2-w
// destroyed through its BMC (IPMI), which keeps the quorum too: PASS, and
// its member, its files removed, rejoins as a new one. The negative
// control, deploy-etcd-kills.yaml, kills two members at once: no quorum,
// FAIL; both are started again at the faults' end, and the etcd is whole
// once more. Then the other engines, deployed (deployedEngines); the
// transfer load on deployed engines is the quickstart's
// (TestQuickstartOnK3s).
// The agents of the scenario must run (the members' files are looked at
// and written through them).
func deployedRuns(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, pods map[string]pod, from string) {
	ctx := t.Context()
	tags := map[string]string{}
	for _, e := range (&images.Builder{Cache: kindtest.Cache, Log: enginetest.Log(t)}).Engines() {
		if e.Name == "etcd" || e.Name == "kafka" || e.Name == "redis" || e.Name == "mariadb" || e.Name == "docstore" || e.Name == "zookeeper" {
			tags[e.Name] = e.Tag()
			// as if pulled from the registry: the nodes have it, so none is
			require.NoError(t, c.LoadImage(ctx, e.Tag()))
		}
	}
	o := k3slab.Options{Cluster: kc, Log: enginetest.ProcessLog(), PortOffset: deploy.DefaultPortOffset, Image: func(engine string) (string, error) {
		if tags[engine] == "" {
			return "", fmt.Errorf("no image of %s in this test", engine)
		}
		return tags[engine], nil
	}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sel, _ := k3s.OwnedSelector(agentScenario)
		err := kc.Client.CoreV1().Pods(k3s.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: sel + ",app.kubernetes.io/component=" + deploy.ComponentMember})
		require.NoError(t, err)
	})
	runs := enginetest.NewEvidence(t).Sub("deployed")

	// dc2-w destroyed through its BMC (IPMI; attach mode's power run is
	// Redfish's): its member's files go too, and it rejoins without them
	power, log, uncable := powered(t, c, bmc.IPMI)
	withPower := o
	withPower.BMC = power
	scoredRunOn(t, withPower, runs, "deploy-etcd.yaml", checks.Pass)
	cycled, err := bmctest.PowerCycled(log)
	require.NoError(t, err)
	require.True(t, cycled, "dc2-w went off and on through its BMC")
	waitReady(t, c, "dc2-w", true, 3*time.Minute)
	whole := deployedWhole(t, withPower, "deploy-etcd.yaml")
	uncable()
	echoAgain(t, c, pods, from)
	for _, m := range whole["etcd"].Members {
		n, ok := c.Plan.Node(m.Node)
		require.True(t, ok)
		require.Equal(t, n.Addr.String(), m.Addr, "member %s listens on its node's address", m.Name)
	}
	// dc1-cp's listening sockets: chaosloop's etcd at the offset ports
	// beside kind's own at 2379
	port := func(p int) string { return fmt.Sprintf(":%04X", p+deploy.DefaultPortOffset) }
	listening := listeningOn(t, c, "dc1-cp")
	require.Contains(t, listening, port(2379), "chaosloop's etcd takes clients at 2379+offset")
	require.Contains(t, listening, port(2380), "and its peers at 2380+offset")
	require.Contains(t, listening, fmt.Sprintf(":%04X", 2379), "beside kind's own etcd")

	quorum := scoredRunOn(t, o, runs, "deploy-etcd-kills.yaml", checks.Fail)
	require.True(t, strings.Contains(quorum.Summary, "quorum lost"), quorum.Summary)
	deployedWhole(t, o, "deploy-etcd-kills.yaml")

	// down's part: the members stopped, their files gone from the nodes
	for i, node := range adopterEtcdNodes {
		out, err := c.Exec(ctx, node, fmt.Sprintf("test -d %s/etcd-%d/data/member", deploy.Root(agentScenario), i))
		require.NoError(t, err, "member %d's data on %s: %s", i, node, out)
	}
	td, err := deploy.Down(ctx, kc, agentScenario)
	require.NoError(t, err)
	require.Len(t, td.Pods, 3)
	require.Empty(t, td.Stranded)
	t.Logf("deploy.Down: stopped %v, wiped %v", td.Pods, td.Wiped)
	for _, node := range adopterEtcdNodes {
		require.Contains(t, td.Wiped, node)
		out, err := c.Exec(ctx, node, "test -e "+deploy.Root(agentScenario)+" && echo left || echo gone")
		require.NoError(t, err, "%s", out)
		require.Equal(t, "gone", strings.TrimSpace(string(out)), "node %s", node)
	}
	deployedEngines(t, c, kc, o, runs)
}

// deployedDown: no one-shot pod of scenario is left, and down stops its
// pods, which are pods; it returns what down did.
func deployedDown(t *testing.T, kc *k3s.Cluster, scenario string, pods int) deploy.Teardown {
	ctx := t.Context()
	sel, err := k3s.OwnedSelector(scenario)
	require.NoError(t, err)
	left, err := kc.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel + "," + deploy.LabelOnce})
	require.NoError(t, err)
	require.Empty(t, left.Items)
	td, err := deploy.Down(ctx, kc, scenario)
	require.NoError(t, err)
	require.Len(t, td.Pods, pods)
	t.Logf("deploy.Down: stopped %v, wiped %v", td.Pods, td.Wiped)
	return td
}

// deployedEngines: testdata/deploy-engines.yaml deploys five engines
// at once: a ZooKeeper ensemble (its zoo.cfg and myid written on the
// members' nodes through their agents), a Kafka in ZooKeeper mode on it
// (deployed after it), a Redis with its Sentinels (two pods per member;
// their files given to the image's redis user by a one-shot pod), a
// Galera cluster (its datadirs initialised, owned by the image's mysql
// user and its workload account made by one-shot pods) and the document
// store (three pods per member: Patroni with its PostgreSQL, an etcd,
// FerretDB). One member of each is killed at once, Redis' primary and
// the store's bootstrap leader among them, then dc2-w is cut off: each
// keeps its majority in dc1, as analyze predicts: PASS. The killed
// members rejoin: one Redis primary, every member healthy; the brokers
// kept their storage. The workload account's password is on each Galera
// member's node, root's only, and no file of root's SQL is left; so is
// the document store's secret. Each ZooKeeper server takes its clients
// at 2181 plus the offset on every address of its node. A kill is a
// SIGKILL (hardKill).
func deployedEngines(t *testing.T, c *kindlab.Cluster, kc *k3s.Cluster, o k3slab.Options, runs string) {
	ctx := t.Context()
	const file = "deploy-engines.yaml"
	scoredRunOn(t, o, runs, file, checks.Pass)
	whole := deployedWhole(t, o, file)
	require.Len(t, whole, 5)
	for name, si := range whole {
		require.Len(t, si.Members, 3, name)
	}
	// the killed primary rejoined (as a replica; a later failover, as
	// Sentinel's promotion of dc2-w's member then cut off, may make it
	// primary again): one primary, every member healthy
	primaries := 0
	for _, m := range whole["cache"].Members {
		require.True(t, m.Up && m.Healthy, "%+v", m)
		if m.Role == "primary" {
			primaries++
		}
	}
	require.Equal(t, 1, primaries, "%+v", whole["cache"].Members)
	root := deploy.Root(agentScenario)
	out, err := c.Exec(ctx, "dc1-cp", fmt.Sprintf("stat -c %%U %s/cache-0/data/appendonlydir", root))
	require.NoError(t, err, "%s", out)
	t.Logf("member 0's append-only files belong to uid/user %s on dc1-cp", strings.TrimSpace(string(out)))
	onMemberNodes(t, c, func(i int) (string, string) {
		return fmt.Sprintf("stat -c '%%a %%U' %s/db-%d/db.galera-password && ! test -e %s/db-%d/data/.root.sql", root, i, root, i), "600 root"
	})
	onMemberNodes(t, c, func(i int) (string, string) {
		return fmt.Sprintf("stat -c '%%a %%U' %s/docs-%d/docs.docstore-secret", root, i), "600 root"
	})
	client := 2181 + deploy.DefaultPortOffset
	onMemberNodes(t, c, func(i int) (string, string) {
		dir := fmt.Sprintf("%s/zk-%d/data", root, i)
		return fmt.Sprintf("cat %s/myid && grep -x clientPort=%d %s/zoo.cfg", dir, client, dir), fmt.Sprintf("%d\nclientPort=%d", i+1, client)
	})
	require.Contains(t, listeningOn(t, c, "dc1-cp"), fmt.Sprintf("00000000:%04X", client), "the client port on every address")
	brokerStorage(t, c, agentScenario, adopterEtcdNodes, "broker.id")
	hardKill(t, kc, o, file, "service/cache/1", 2)
	deployedDown(t, kc, agentScenario, 3+3+6+3+9)
}

// listeningOn is node's listening TCP sockets, a local address (hex
// IP:port, as /proc/net/tcp has it) a line.
func listeningOn(t *testing.T, c *kindlab.Cluster, node string) string {
	out, err := c.Exec(t.Context(), node, `awk '$4 == "0A" {print $2}' /proc/net/tcp`)
	require.NoError(t, err, "%s", out)
	return string(out)
}

// brokerStorage: each broker of scenario's service kafka, on nodes in
// member order, keeps the storage formatted for its id (key: node.id in
// KRaft mode, broker.id in ZooKeeper mode) on its node.
func brokerStorage(t *testing.T, c *kindlab.Cluster, scenario string, nodes []string, key string) {
	onNodes(t, c, nodes, func(i int) (string, string) {
		return fmt.Sprintf("grep -x %s=%d %s/kafka-%d/data/kafka-logs/meta.properties", key, i+1, deploy.Root(scenario), i), fmt.Sprintf("%s=%d", key, i+1)
	})
}

// onMemberNodes runs, on the node of each member i (adopterEtcdNodes),
// the command of check(i), whose output, trimmed, must be its want.
func onMemberNodes(t *testing.T, c *kindlab.Cluster, check func(i int) (command, want string)) {
	onNodes(t, c, adopterEtcdNodes, check)
}

// onNodes runs, on nodes[i], the command of check(i), whose output,
// trimmed, must be its want.
func onNodes(t *testing.T, c *kindlab.Cluster, nodes []string, check func(i int) (command, want string)) {
	for i, node := range nodes {
		command, want := check(i)
		out, err := c.Exec(t.Context(), node, command)
		require.NoError(t, err, "member %d's files on %s: %s", i, node, out)
		require.Equal(t, want, strings.TrimSpace(string(out)), "member %d on %s", i, node)
	}
}

// hardKill: a kill of a deployed member (target) is a SIGKILL of its
// processes by the agent on its node, as the local lab's: each of its
// pods' containers ends with 137 (128+SIGKILL) at once, with no grace
// period, and the pods are not deleted (the lab starts the member again
// at the fault's end: deployedWhole here).
func hardKill(t *testing.T, kc *k3s.Cluster, o k3slab.Options, file, target string, pods int) {
	ctx := t.Context()
	sc, err := scenarios.Parse("testdata/" + file)
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	tg, err := scenarios.ParseTarget(target)
	require.NoError(t, err)
	nm := &nemesis.Nemesis{Cluster: kc, Topology: topo, Log: enginetest.Log(t), Wait: time.Minute}
	i, err := strconv.Atoi(tg.Member)
	require.NoError(t, err)
	sel, err := deploy.MemberSelector(agentScenario, deploy.MemberName(tg.Name, i))
	require.NoError(t, err)
	kill := lab.Fault{Action: scenarios.ActionKill, Target: target}
	start := time.Now()
	_, err = nm.Inject(ctx, kill)
	require.NoError(t, err)
	var ended []string
	require.Eventually(t, func() bool {
		list, err := kc.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil || len(list.Items) != pods {
			return false
		}
		ended = ended[:0]
		for _, p := range list.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if term := cs.State.Terminated; term != nil && p.DeletionTimestamp == nil {
					ended = append(ended, fmt.Sprintf("%s: exit %d (%s)", p.Name, term.ExitCode, term.Reason))
				}
			}
		}
		return len(ended) == pods
	}, time.Minute, 200*time.Millisecond, "the member's %d pods end, not deleted: %v", pods, ended)
	t.Logf("kill %s: its pods ended %s after the injection: %s", target, time.Since(start).Round(time.Millisecond), strings.Join(ended, "; "))
	for _, e := range ended {
		require.Contains(t, e, "exit 137", "SIGKILL, not a clean stop")
	}
	require.NoError(t, nm.Recover(ctx, kill))
	deployedWhole(t, o, file)
}

// deployedWhole stands file's deployed services up again, which keeps
// the members that run and starts the others, and returns their status,
// by name, once they are healthy: every member up, with the data it had.
func deployedWhole(t *testing.T, o k3slab.Options, file string) map[string]lab.ServiceStatus {
	sc, err := scenarios.Parse("testdata/" + file)
	require.NoError(t, err)
	start := time.Now()
	l, err := k3slab.NewProvider(o).Up(t.Context(), sc)
	require.NoError(t, err, "the deployed service whole again after %s", file)
	defer func() { require.NoError(t, l.(lab.Closer).Close()) }()
	st, err := l.Status(t.Context())
	require.NoError(t, err)
	require.Len(t, st.Services, len(sc.Services))
	whole := map[string]lab.ServiceStatus{}
	for _, si := range st.Services {
		require.True(t, si.Healthy && si.Writable, "%+v", si)
		var members []string
		for _, m := range si.Members {
			members = append(members, fmt.Sprintf("%s on %s at %s: %s", m.Name, m.Node, m.Addr, m.Role))
		}
		t.Logf("deployed %s whole %s after %s: %s", si.Name, time.Since(start).Round(time.Second), file, strings.Join(members, "; "))
		whole[si.Name] = si
	}
	return whole
}
