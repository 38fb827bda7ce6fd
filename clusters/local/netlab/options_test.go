package netlab

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The options change nothing of a local lab's plan, down to its JSON.
func TestPlanWithoutOptionsIsTheLocalPlan(t *testing.T) {
	sc := scenario(t, "plan", testTopology)
	p, err := NewPlan(sc)
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	for _, field := range []string{"nsPrefix", "adopted", "routed"} {
		require.NotContains(t, string(b), `"`+field+`"`)
	}
	require.Equal(t, "cl-plan.", p.base())
	require.Equal(t, "eth0", p.Hosts[0].Ports[0].Dev)
	require.Empty(t, p.adopted())
}

func TestPlanWithOptions(t *testing.T) {
	sc := scenario(t, "plan", testTopology)
	pods := func(i int) []netip.Prefix {
		return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(128 + i), 0}), 24)}
	}
	o := Options{NSPrefix: "ck-", Adopt: true, Routed: map[string][]netip.Prefix{"n1": pods(0), "n2": pods(1), "n6": pods(2)}}
	p, err := NewPlanWith(sc, o)
	require.NoError(t, err)
	require.Equal(t, "ck-plan.sw", p.SwitchNS)
	n1, _ := p.host("n1")
	require.Equal(t, "ck-plan.h.n1", n1.NetNS)
	require.True(t, n1.Adopted)
	require.Equal(t, []string{"lab0", "lab1"}, []string{n1.Ports[0].Dev, n1.Ports[1].Dev})
	require.Len(t, p.adopted(), len(p.Hosts))

	// n2 (same rack) reaches n1's pods directly over both switches; n3
	// (another rack) through its router, by the lab-wide route
	n2, _ := p.host("n2")
	cmds := strings.Join(p.hostCommands(n2), "\n")
	require.Contains(t, cmds, "route replace 198.19.128.0/24 via "+n1.Addr.String()+" dev lab0 onlink")
	require.Contains(t, cmds, "route replace 198.19.128.0/24 via "+n1.Addr.String()+" dev lab1 onlink")
	n3, _ := p.host("n3")
	require.NotContains(t, strings.Join(p.hostCommands(n3), "\n"), "198.19.128.0/24")

	// dc1's router reaches n1's pods over n1's rack; dc3's router sends
	// them on towards dc1 as it does dc1's racks, and blackholes them when
	// no link works
	r1, _ := p.router("dc1")
	require.Contains(t, strings.Join(p.routedToSite(r1), "\n"), "route replace 198.19.128.0/24 via "+n1.Addr.String())
	l := &Lab{st: &State{Plan: *p}}
	require.Contains(t, strings.Join(l.wanRoutes("dc3"), "\n"), "route replace 198.19.128.0/24 via")
	l.st.Isolated = []string{"site/dc3"}
	require.Contains(t, l.wanRoutes("dc3"), "route replace blackhole 198.19.128.0/24")
	require.NotContains(t, strings.Join(l.wanRoutes("dc1"), "\n"), "198.19.128.0/24")

	detached, ports := p.detached(map[string]bool{n1.NetNS: true})
	require.False(t, detached[n1.NetNS])
	require.True(t, detached[n2.NetNS])
	require.True(t, ports[n2.Ports[0].Port])
	require.True(t, p.adoptedPort(n2.Ports[0].Port))
}

func TestPlanRefusesBadOptions(t *testing.T) {
	sc := scenario(t, "plan", testTopology)
	for name, o := range map[string]Options{
		"bad prefix":       {NSPrefix: "CL"},
		"outside the lab":  {Routed: map[string][]netip.Prefix{"n1": {netip.MustParsePrefix("10.1.0.0/24")}}},
		"a rack's subnet":  {Routed: map[string][]netip.Prefix{"n1": {netip.MustParsePrefix("198.18.1.0/24")}}},
		"the routers'":     {Routed: map[string][]netip.Prefix{"n1": {netip.MustParsePrefix("198.18.0.0/16")}}},
		"another's prefix": {Routed: map[string][]netip.Prefix{"n1": {netip.MustParsePrefix("198.19.128.0/24")}, "n2": {netip.MustParsePrefix("198.19.128.0/25")}}},
	} {
		_, err := NewPlanWith(sc, o)
		require.Error(t, err, name)
	}
}
