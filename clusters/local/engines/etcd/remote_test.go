package etcd

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// nodeFiles stands for the members' nodes' files: the paths that exist
// there, the directories made. (Orchestration only: no etcd runs.)
type nodeFiles struct {
	exist map[string]bool
	made  []string
}

func (f *nodeFiles) MkdirAll(_ context.Context, m engines.Member, dir string, _ os.FileMode) error {
	f.made = append(f.made, m.Name+":"+dir)
	return nil
}

func (f *nodeFiles) Exists(_ context.Context, m engines.Member, path string) (bool, error) {
	return f.exist[m.Name+":"+path], nil
}

func (f *nodeFiles) WriteFile(context.Context, engines.Member, string, []byte, os.FileMode) error {
	return errors.New("etcd writes no files")
}

func (f *nodeFiles) ReadFile(context.Context, engines.Member, string) ([]byte, error) {
	return nil, errors.New("etcd reads no files")
}

// specs records the process specs started, as a launcher on nodes would.
type specs []proc.Spec

func (s *specs) Start(_ context.Context, _ engines.Member, spec proc.Spec) (string, error) {
	*s = append(*s, spec)
	return "recorded", nil
}
func (s *specs) Alive(context.Context, string) bool                   { return false }
func (s *specs) Signal(context.Context, string, syscall.Signal) error { return os.ErrProcessDone }
func (s *specs) Stop(context.Context, string, time.Duration) error    { return nil }

// TestMembersOnRemoteNodes: with a cluster's Files and a port offset, the
// engine asks the members' nodes whether they have data (not this
// machine), makes their directories there, and has them listen on the
// offset ports, on loopback too for the port-forwards.
func TestMembersOnRemoteNodes(t *testing.T) {
	var c engines.Cluster
	c.Service = "etcd"
	for i, addr := range []string{"198.18.1.10", "198.18.2.10", "198.18.3.10"} {
		c.Members = append(c.Members, engines.Member{
			Index: i, Name: "etcd-" + string(rune('0'+i)), Node: "n" + string(rune('0'+i)),
			Addr: netip.MustParseAddr(addr), PortOffset: 2000, ListenLoopback: true,
			DataDir: "/var/lib/chaosloop/etcd/data", LogDir: "/var/lib/chaosloop/etcd/log",
		})
	}
	files := &nodeFiles{exist: map[string]bool{"etcd-1:/var/lib/chaosloop/etcd/data/member": true}}
	var started specs
	c.Files, c.Launcher = files, &started
	e := New(slog.New(slog.DiscardHandler))

	// etcd-1 has data on its node: it restarts as an existing member.
	require.NoError(t, e.StartMember(context.Background(), &c, 1))
	require.Len(t, started, 1)
	args := started[0].Args
	flag := func(name string) string {
		i := slices.Index(args, name)
		require.GreaterOrEqual(t, i, 0, name)
		return args[i+1]
	}
	assert.Equal(t, "existing", flag("--initial-cluster-state"))
	assert.Equal(t, "http://198.18.2.10:4379,http://127.0.0.1:4379", flag("--listen-client-urls"), "a port-forward reaches it on loopback")
	assert.Equal(t, "http://198.18.2.10:4379", flag("--advertise-client-urls"))
	assert.Equal(t, "http://198.18.2.10:4380", flag("--listen-peer-urls"))
	assert.Equal(t, "etcd-0=http://198.18.1.10:4380,etcd-1=http://198.18.2.10:4380,etcd-2=http://198.18.3.10:4380", flag("--initial-cluster"))
	assert.Equal(t, []string{"etcd-1:/var/lib/chaosloop/etcd/data", "etcd-1:/var/lib/chaosloop/etcd/log"}, files.made,
		"the member's directories are made on its node")
	assert.Equal(t, []string{"198.18.1.10:4379", "198.18.2.10:4379", "198.18.3.10:4379"}, e.Endpoints(&c))

	// Nobody has data: etcd-0 is part of a fresh bootstrap.
	delete(files.exist, "etcd-1:/var/lib/chaosloop/etcd/data/member")
	require.NoError(t, e.StartMember(context.Background(), &c, 0))
	require.Len(t, started, 2)
	args = started[1].Args
	assert.Equal(t, "new", flag("--initial-cluster-state"))
}
