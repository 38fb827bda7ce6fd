package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

func TestMain(m *testing.M) { kindtest.Main(m) }

func TestConfig(t *testing.T) {
	s := cluster.Spec{Name: "c", Image: "chaosloop/node:x", Nodes: []cluster.Node{{CNIConfig: "/a"}, {CNIConfig: "/b"}}}
	c := s.Config()
	require.True(t, c.Networking.DisableDefaultCNI)
	require.Equal(t, "198.19.128.0/20", c.Networking.PodSubnet)
	require.Equal(t, "198.19.160.0/20", c.Networking.ServiceSubnet)
	require.Equal(t, "ipv4", string(c.Networking.IPFamily))
	require.Len(t, c.Nodes, 2)
	require.Equal(t, "control-plane", string(c.Nodes[0].Role))
	require.Equal(t, "worker", string(c.Nodes[1].Role))
	require.Equal(t, "/b", c.Nodes[1].ExtraMounts[0].HostPath)
	require.Contains(t, c.KubeadmConfigPatches[0], "cgroupDriver: cgroupfs")

	s.KubeadmPatches = []string{"kind: ClusterConfiguration\n"}
	s.Nodes = append(s.Nodes, cluster.Node{CNIConfig: "/c", KubeadmPatches: []string{"kind: JoinConfiguration\n"},
		Mounts: []cluster.Mount{{Host: "/h", Container: "/etc/x"}}})
	c = s.Config()
	require.Equal(t, []string{c.KubeadmConfigPatches[0], "kind: ClusterConfiguration\n"}, c.KubeadmConfigPatches)
	require.Equal(t, []string{"kind: JoinConfiguration\n"}, c.Nodes[2].KubeadmConfigPatches)
	require.Len(t, c.Nodes[2].ExtraMounts, 2)
	require.True(t, c.Nodes[2].ExtraMounts[1].Readonly)
	require.Equal(t, []string{"c-control-plane", "c-worker", "c-worker2"}, s.ContainerNames())
}

// bridgeConf is a one-node CNI setup: a bridge, addresses from the
// node's share of the pod range.
const bridgeConf = `{
  "cniVersion": "0.4.0",
  "name": "chaosloop",
  "plugins": [{
    "type": "bridge", "bridge": "cni0", "isGateway": true, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.19.128.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
`

// TestOneNodeCluster builds the images (a cache hit after the first run),
// creates a one-node cluster with the kind library, waits for the node to
// be Ready and a pod to run, and deletes the cluster. A failed cluster's
// logs are kept in the test's evidence directory.
func TestOneNodeCluster(t *testing.T) {
	ev := enginetest.NewEvidence(t)
	kindtest.Daemon(t)
	log := enginetest.Log(t)
	ctx := context.Background()
	b := &images.Builder{Cache: kindtest.Cache, Log: log, Progress: func(step, stage, detail string) {
		t.Logf("%-22s %-8s %s", step, stage, detail)
	}}
	built, err := b.Build(ctx)
	require.NoError(t, err)
	t.Logf("images: %s (%s)", built.Node, built.Took.Round(time.Millisecond))

	dir := ev.Sub("cluster")
	conf := filepath.Join(dir, "10-chaosloop.conflist")
	require.NoError(t, os.WriteFile(conf, []byte(bridgeConf), 0o644))
	name := "chaosloop-test"
	spec := cluster.Spec{Name: name, Image: built.Node, Nodes: []cluster.Node{{CNIConfig: conf}},
		StateDir: filepath.Join(dir, "state"), Wait: 4 * time.Minute}
	cluster.Delete(log, name, spec.StateDir) //nolint:errcheck // a leftover of a crashed run
	start := time.Now()
	err = cluster.Create(ctx, log, spec)
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs(t, name, ev.Sub("logs"))
		}
		require.NoError(t, cluster.Delete(log, name, spec.StateDir))
		// the test leaves no network behind (fails harmlessly while
		// another cluster uses it)
		docker.Run(context.Background(), "network", "rm", cluster.NetworkName) //nolint:errcheck
	})
	require.NoError(t, err)
	up := time.Since(start)
	node := name + "-control-plane"
	kubectl := func(args ...string) string {
		out, err := docker.Run(ctx, append([]string{"exec", node, "kubectl"}, args...)...)
		require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	require.Contains(t, kubectl("get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"), "True")
	// the service account controller makes "default" shortly after the
	// API answers; a pod cannot be created before
	require.Eventually(t, func() bool {
		_, err := docker.Run(ctx, "exec", node, "kubectl", "get", "serviceaccount", "default")
		return err == nil
	}, time.Minute, time.Second)
	kubectl("run", "probe", "--image=registry.k8s.io/pause:3.10.1", "--image-pull-policy=Never", "--restart=Never")
	kubectl("wait", "--for=condition=Ready", "pod/probe", "--timeout=120s")
	ip := kubectl("get", "pod", "probe", "-o", "jsonpath={.status.podIP}")
	require.True(t, strings.HasPrefix(ip, "198.19.128."), "pod IP %s", ip)
	running := time.Since(start)
	// CoreDNS turns Ready only once it reaches the API through the
	// kubernetes Service: kube-proxy's rules work.
	kubectl("-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=kube-dns", "--timeout=180s")
	dns := time.Since(start)
	addr, err := docker.Run(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}", node)
	require.NoError(t, err)
	fields := strings.Fields(string(addr))
	require.Len(t, fields, 1, "one IPv4 address, no IPv6: %q", addr)
	require.True(t, cluster.NetworkSubnet.Contains(netip.MustParseAddr(fields[0])), "node address %s", fields[0])
	t.Logf("the preloaded images were imported in %s", unitTook(t, node, "chaosloop-images"))
	mem, _ := docker.Run(ctx, "stats", "--no-stream", "--format", "{{.MemUsage}}", node)
	t.Logf("cluster up (node Ready) in %s, a pod running after %s, CoreDNS Ready after %s, pod IP %s, node memory %s",
		up.Round(time.Second), running.Round(time.Second), dns.Round(time.Second), ip, strings.TrimSpace(string(mem)))
	t.Log(kubectl("get", "pods", "-A", "-o", "wide"))
}

// keepLogs saves kind's logs of the cluster (systemd journal, kubelet,
// containerd, pods) into the test's evidence directory.
func keepLogs(t *testing.T, name, dir string) {
	out, _ := exec.Command("docker", "exec", name+"-control-plane", "journalctl", "--no-pager", "-n", "300").CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, "journal-tail.txt"), out, 0o644)
	if err := cluster.CollectLogs(enginetest.Log(t), name, dir); err != nil {
		t.Logf("collect logs: %v", err)
	}
}

// unitTook is how long a oneshot systemd unit in the node ran.
func unitTook(t *testing.T, node, unit string) time.Duration {
	out, err := docker.Run(context.Background(), "exec", node, "systemctl", "show", unit,
		"--value", "-p", "ExecMainStartTimestampMonotonic", "-p", "ExecMainExitTimestampMonotonic")
	require.NoError(t, err)
	f := strings.Fields(string(out))
	require.Len(t, f, 2, "%q", out)
	start, err1 := strconv.ParseInt(f[0], 10, 64)
	exit, err2 := strconv.ParseInt(f[1], 10, 64)
	require.NoError(t, errors.Join(err1, err2))
	return time.Duration(exit-start) * time.Microsecond
}
