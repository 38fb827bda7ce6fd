package enginetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// MemFiles stands for the members' nodes' files (engines.Files), keyed
// "NODE:PATH", to unit-test the orchestration of an engine on a real
// cluster's nodes.
type MemFiles map[string]string

var _ engines.Files = MemFiles{}

func (f MemFiles) MkdirAll(context.Context, engines.Member, string, os.FileMode) error { return nil }

func (f MemFiles) Exists(_ context.Context, m engines.Member, p string) (bool, error) {
	_, ok := f[m.Node+":"+p]
	return ok, nil
}

func (f MemFiles) WriteFile(_ context.Context, m engines.Member, p string, b []byte, _ os.FileMode) error {
	f[m.Node+":"+p] = string(b)
	return nil
}

func (f MemFiles) ReadFile(_ context.Context, m engines.Member, p string) ([]byte, error) {
	b, ok := f[m.Node+":"+p]
	if !ok {
		return nil, os.ErrNotExist
	}
	return []byte(b), nil
}

// OnNodes is a service of n members as deploy mode places them on a
// real cluster's nodes (orchestration tests): member i, SERVICE-i, on
// node "ni" at 198.18.0.(10+i), its ports offset by 2000 and its clients
// taken on loopback too, its directories under
// /var/lib/chaosloop/s/SERVICE-i; its files in a MemFiles.
func OnNodes(service string, n int) (*engines.Cluster, MemFiles) {
	files := MemFiles{}
	c := &engines.Cluster{Service: service, Files: files}
	for i := range n {
		name := fmt.Sprintf("%s-%d", service, i)
		c.Members = append(c.Members, engines.Member{Index: i, Name: name, Node: fmt.Sprintf("n%d", i),
			Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}), PortOffset: 2000, ListenLoopback: true,
			DataDir: "/var/lib/chaosloop/s/" + name + "/data", LogDir: "/var/lib/chaosloop/s/" + name + "/log"})
	}
	return c, files
}
