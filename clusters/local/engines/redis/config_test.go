package redis

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// On a real cluster's node a member listens at its ports plus the
// offset, on its node's address and loopback (the port-forward's), and
// has no unix sockets: it is reached over TCP.
func TestConfigOnACluster(t *testing.T) {
	c, files := enginetest.OnNodes("cache", 3)
	ctx := t.Context()
	m := c.Members[1]
	require.NoError(t, writeRedisConf(ctx, c, m, 0))
	require.NoError(t, writeSentinelConf(ctx, c, m, 0))
	conf := files["n1:"+redisConf(m)]
	assert.Contains(t, conf, "\nbind 198.18.0.11 127.0.0.1\nbind-source-addr 198.18.0.11\nport 8379\n")
	assert.Contains(t, conf, "replica-announce-port 8379\n")
	assert.Contains(t, conf, "replicaof 198.18.0.10 8379\n")
	assert.NotContains(t, conf, "unixsocket")
	sent := files["n1:"+sentinelConf(m)]
	assert.Contains(t, sent, "\nbind 198.18.0.11 127.0.0.1\nport 28379\n")
	assert.Contains(t, sent, "sentinel announce-port 28379\n")
	assert.Contains(t, sent, "sentinel monitor cache 198.18.0.10 8379 2\n")
	assert.NotContains(t, sent, "unixsocket")

	// Sentinel's own rewrite of its file is kept; the primary it names
	// is read back from the nodes
	files["n1:"+sentinelConf(m)] += "sentinel config-epoch cache 3\n"
	files["n2:"+sentinelConf(c.Members[2])] = "sentinel monitor cache 198.18.0.12 8379 2\nsentinel config-epoch cache 4\n"
	require.NoError(t, writeSentinelConf(ctx, c, m, 0))
	assert.Contains(t, files["n1:"+sentinelConf(m)], "config-epoch cache 3")
	assert.Equal(t, 2, configuredPrimary(ctx, c))

	o := options(c, m, "sentinel", statusWait)
	assert.Equal(t, "tcp", o.Network)
	assert.Equal(t, "198.18.0.11:28379", o.Addr)
	assert.Equal(t, []string{"198.18.0.10:28379", "198.18.0.11:28379", "198.18.0.12:28379"}, SentinelAddrs(c))

	// in the labs: the member's socket, its usual ports
	local := &engines.Cluster{Service: "cache", Members: []engines.Member{{Name: "cache-0", Addr: netip.MustParseAddr("198.18.0.10"), DataDir: "/d"}}}
	o = options(local, local.Members[0], "redis", statusWait)
	assert.Equal(t, "unix", o.Network)
	assert.Equal(t, "/d/redis.sock", o.Addr)
}
