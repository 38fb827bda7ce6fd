package zookeeper

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// pods stand for a real cluster's pods (orchestration only): they record
// the processes started and run none; the started ones are alive.
type pods struct{ started []proc.Spec }

func (p *pods) Start(_ context.Context, _ engines.Member, spec proc.Spec) (string, error) {
	p.started = append(p.started, spec)
	return "pod", nil
}

func (p *pods) Alive(_ context.Context, name string) bool {
	for _, s := range p.started {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (p *pods) Signal(context.Context, string, syscall.Signal) error { return nil }
func (p *pods) Stop(context.Context, string, time.Duration) error    { return nil }

// srvrAnswer is a follower's answer to srvr.
const srvrAnswer = "Zookeeper version: 3.8.0-debian--1, built on 2023-01-01 00:00 UTC\nLatency min/avg/max: 0/0.0/0\nReceived: 3\nSent: 2\nConnections: 1\nOutstanding: 0\nZxid: 0x100000002\nMode: follower\nNode count: 5\n"

// answering dials an in-memory server that reads the four-letter word
// and answers srvrAnswer, recording where it was asked to dial.
func answering(dialed *[]string) engines.DialFunc {
	return func(_ context.Context, _, addr string) (net.Conn, error) {
		*dialed = append(*dialed, addr)
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			word := make([]byte, 4)
			if _, err := io.ReadFull(server, word); err == nil && string(word) == "srvr" {
				_, _ = io.WriteString(server, srvrAnswer)
			}
		}()
		return client, nil
	}
}

// Deployed on a cluster, a server's zoo.cfg and myid go to its node
// through the cluster's Files; every port it names is ZooKeeper's plus
// the offset, and it takes clients on all the node's addresses
// (ZooKeeper binds one; the port-forward arrives on loopback). Its
// command is the Debian package's, which the engine's image has too;
// srvr reaches it through the cluster's dialer.
func TestOnACluster(t *testing.T) {
	c, files := enginetest.OnNodes("zk", 3)
	p := &pods{}
	c.Launcher = p
	ctx, e := t.Context(), New(enginetest.Log(t))
	require.NoError(t, e.StartMember(ctx, c, 1))

	cfg := files["n1:/var/lib/chaosloop/s/zk-1/data/zoo.cfg"]
	for _, want := range []string{
		"\ndataDir=/var/lib/chaosloop/s/zk-1/data\n",
		"\nclientPort=4181\nclientPortAddress=0.0.0.0\n",
		"\nadmin.enableServer=false\n",
		"\nserver.1=198.18.0.10:4888:5888\nserver.2=198.18.0.11:4888:5888\nserver.3=198.18.0.12:4888:5888\n",
	} {
		assert.Contains(t, cfg, want)
	}
	assert.Equal(t, "2\n", files["n1:/var/lib/chaosloop/s/zk-1/data/myid"])
	for k := range files {
		assert.True(t, strings.HasPrefix(k, "n1:/var/lib/chaosloop/s/zk-1/"), k)
	}

	require.Len(t, p.started, 1)
	s := p.started[0]
	m := c.Members[1]
	assert.Equal(t, ProcessName(m), s.Name)
	assert.Equal(t, "/usr/bin/java", s.Path)
	assert.Contains(t, s.Args, "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar")
	assert.Equal(t, []string{"org.apache.zookeeper.server.quorum.QuorumPeerMain", "/var/lib/chaosloop/s/zk-1/data/zoo.cfg"}, s.Args[len(s.Args)-2:])
	assert.Equal(t, []string{"/var/lib/chaosloop/s/zk-1/data", "/var/lib/chaosloop/s/zk-1/log"}, engines.MemberDirs(m, s))

	// a running member is left alone
	require.NoError(t, e.StartMember(ctx, c, 1))
	assert.Len(t, p.started, 1)

	assert.Equal(t, []string{"198.18.0.10:4181", "198.18.0.11:4181", "198.18.0.12:4181"}, e.Endpoints(c))
	var dialed []string
	c.Dial = answering(&dialed)
	st, err := e.Status(ctx, c)
	require.NoError(t, err)
	assert.Equal(t, []string{"198.18.0.11:4181"}, dialed, "only the running member is asked, at its offset port")
	assert.Equal(t, "not running", st.Members[0].Detail)
	assert.True(t, st.Members[1].Up && st.Members[1].Healthy, "%+v", st.Members[1])
	assert.Equal(t, "follower", st.Members[1].Role)
	assert.Equal(t, "3.8.0", st.Version)
	assert.False(t, st.Writable)
}

// In the labs a member keeps ZooKeeper's usual ports, on its host's
// address only.
func TestInTheLabs(t *testing.T) {
	c := &engines.Cluster{Service: "zk"}
	for i := range 3 {
		c.Members = append(c.Members, engines.Member{Index: i, Name: fmt.Sprintf("zk-%d", i), NetNS: "h",
			Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(1 + i)}), DataDir: "/d", LogDir: "/l"})
	}
	cfg := config(c, 0)
	assert.Contains(t, cfg, "\nclientPort=2181\nclientPortAddress=198.18.0.1\n")
	assert.Contains(t, cfg, "\nserver.1=198.18.0.1:2888:3888\nserver.2=198.18.0.2:2888:3888\nserver.3=198.18.0.3:2888:3888\n")
	assert.Equal(t, "198.18.0.2:2181", New(enginetest.Log(t)).Endpoints(c)[1])
	assert.Equal(t, "h", spec(c.Members[0], "/d/zoo.cfg").NetNS)
	v6 := engines.Member{Addr: netip.MustParseAddr("fd00::1"), ListenLoopback: true}
	assert.Equal(t, netip.IPv6Unspecified(), clientBind(v6))
}
