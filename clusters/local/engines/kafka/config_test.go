package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

func propsMap(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			m[k] = v
		}
	}
	return m
}

func layout(n int) *engines.Cluster {
	c := &engines.Cluster{Service: "kafka", StateDir: "/state"}
	for i := range n {
		c.Members = append(c.Members, engines.Member{Index: i, Name: fmt.Sprintf("k%d", i),
			Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}), DataDir: fmt.Sprintf("/d%d", i)})
	}
	return c
}

func TestServerPropertiesKRaft(t *testing.T) {
	c := layout(3)
	o := Options{Racks: []string{"r1", "r2"}, ReplicationFactor: 3, MinInSync: 2}.withDefaults(3)
	p := propsMap(serverProperties(c, o, 1))
	require.Equal(t, "broker,controller", p["process.roles"])
	require.Equal(t, "2", p["node.id"])
	require.Equal(t, "1@198.18.0.10:9093,2@198.18.0.11:9093,3@198.18.0.12:9093", p["controller.quorum.voters"])
	require.Equal(t, "PLAINTEXT://198.18.0.11:9092,CONTROLLER://198.18.0.11:9093", p["listeners"])
	require.Equal(t, "r2", p["broker.rack"])
	require.Equal(t, "false", p["unclean.leader.election.enable"])
	require.Equal(t, "2", p["min.insync.replicas"])
	require.Equal(t, "3", p["default.replication.factor"])
	require.Empty(t, p["zookeeper.connect"])
	// No rack given for member 2.
	require.NotContains(t, propsMap(serverProperties(c, o, 2)), "broker.rack")
}

// On a cluster a member's ports are offset (its node runs other
// engines) and its client listener takes the kubelet's port-forward on
// loopback too, while it advertises its node's address.
func TestServerPropertiesOnACluster(t *testing.T) {
	c := layout(3)
	for i := range c.Members {
		c.Members[i].PortOffset, c.Members[i].ListenLoopback = 2000, true
	}
	o := Options{}.withDefaults(3)
	p := propsMap(serverProperties(c, o, 1))
	require.Equal(t, "1@198.18.0.10:11093,2@198.18.0.11:11093,3@198.18.0.12:11093", p["controller.quorum.voters"])
	require.Equal(t, "PLAINTEXT://0.0.0.0:11092,CONTROLLER://198.18.0.11:11093", p["listeners"])
	require.Equal(t, "PLAINTEXT://198.18.0.11:11092", p["advertised.listeners"])
	require.Equal(t, []string{"198.18.0.10:11092", "198.18.0.11:11092", "198.18.0.12:11092"}, New(nil, "").Endpoints(c))
	zk := propsMap(serverProperties(c, Options{ZooKeeper: "198.18.0.10:4181/kafka-kafka"}.withDefaults(3), 1))
	require.Equal(t, "PLAINTEXT://0.0.0.0:11092", zk["listeners"], "in ZooKeeper mode too")
	require.Equal(t, "PLAINTEXT://198.18.0.11:11092", zk["advertised.listeners"])
}

func TestServerPropertiesLargeKRaftHasThreeControllers(t *testing.T) {
	c := layout(6)
	o := Options{}.withDefaults(6)
	require.Equal(t, 3, o.ReplicationFactor)
	require.Equal(t, 2, o.MinInSync)
	p := propsMap(serverProperties(c, o, 5))
	require.Equal(t, "broker", p["process.roles"])
	require.Equal(t, "PLAINTEXT://198.18.0.15:9092", p["listeners"])
	require.Equal(t, 3, strings.Count(p["controller.quorum.voters"], "@"))
	require.Equal(t, "broker,controller", propsMap(serverProperties(c, o, 0))["process.roles"])
}

func TestServerPropertiesZooKeeper(t *testing.T) {
	c := layout(3)
	o := Options{ZooKeeper: "198.18.0.9:2181/kafka"}.withDefaults(3)
	require.Equal(t, DefaultZooKeeperVersion, o.Version)
	p := propsMap(serverProperties(c, o, 0))
	require.Equal(t, "1", p["broker.id"])
	require.Equal(t, "198.18.0.9:2181/kafka", p["zookeeper.connect"])
	require.Empty(t, p["process.roles"])
	require.Empty(t, p["controller.quorum.voters"])
}

func TestClusterIDIsStableAndValid(t *testing.T) {
	a, b := clusterID(layout(3)), clusterID(layout(3))
	require.Equal(t, a, b)
	require.Len(t, a, 22) // a base64url UUID, as the storage tool wants
	for i := range 1000 {
		c := layout(3)
		c.StateDir = fmt.Sprintf("/tmp/cl-%d/lab", i)
		id := clusterID(c)
		require.NotContains(t, "-_", id[:1], "%s would be read as an option by the storage tool", id)
	}
}

func TestPomPinsBinding(t *testing.T) {
	require.Contains(t, POM("4.1.1"), "log4j-slf4j-impl")
	require.Contains(t, POM("3.9.1"), "slf4j-reload4j")
	require.Contains(t, POM("3.9.1"), "<version>3.9.1</version>")
}

func TestInstallExplainsMissingTools(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	e := New(slog.New(slog.DiscardHandler), t.TempDir())
	err := e.Install(context.Background(), "4.1.1")
	require.ErrorContains(t, err, "java not found")
	require.ErrorContains(t, e.Install(context.Background(), "4.1.1; rm -rf /"), "bad version")
}
