package enginetest

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// ip runs ip(8) and fails the test with its output when it fails.
func ip(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// NetNSHosts puts the members in network namespaces of their own, joined by
// a bridge in a switch namespace, addressed from 198.19.0.0/24 with no
// default route (as the lab does); removed by cleanup. Namespace and port
// names start with tag, which must be unique on the machine and short
// (interface names have at most 15 bytes).
func NetNSHosts(tb testing.TB, c *engines.Cluster, tag string) {
	tb.Helper()
	sw := tag + "-sw"
	tb.Cleanup(func() {
		for _, m := range c.Members {
			_ = exec.Command("ip", "netns", "del", m.NetNS).Run()
		}
		_ = exec.Command("ip", "netns", "del", sw).Run()
	})
	ip(tb, "netns", "add", sw)
	ip(tb, "-n", sw, "link", "add", "br0", "type", "bridge")
	ip(tb, "-n", sw, "link", "set", "br0", "up")
	for i := range c.Members {
		m := &c.Members[i]
		m.NetNS = fmt.Sprintf("%s-h%d", tag, i+1)
		m.Addr = netip.AddrFrom4([4]byte{198, 19, 0, byte(11 + i)})
		ip(tb, "netns", "add", m.NetNS)
		port := fmt.Sprintf("%sp%d", tag, i+1)
		ip(tb, "link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", m.NetNS)
		ip(tb, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip(tb, "-n", m.NetNS, "addr", "add", m.Addr.String()+"/24", "dev", "eth0")
		ip(tb, "-n", m.NetNS, "link", "set", "eth0", "up")
		ip(tb, "-n", m.NetNS, "link", "set", "lo", "up")
	}
}

// NetNSVeth makes a network namespace joined to this one by a veth pair
// (host side hostAddr/30, namespace side nsAddr/30), removed at cleanup:
// one member inside it is reachable from the test's own namespace.
func NetNSVeth(tb testing.TB, name string, hostAddr, nsAddr netip.Addr) {
	tb.Helper()
	ip(tb, "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ip(tb, "link", "add", name+"-h", "type", "veth", "peer", "name", name+"-n")
	tb.Cleanup(func() { _ = exec.Command("ip", "link", "del", name+"-h").Run() })
	ip(tb, "link", "set", name+"-n", "netns", name)
	ip(tb, "addr", "add", hostAddr.String()+"/30", "dev", name+"-h")
	ip(tb, "link", "set", name+"-h", "up")
	ip(tb, "-n", name, "addr", "add", nsAddr.String()+"/30", "dev", name+"-n")
	ip(tb, "-n", name, "link", "set", name+"-n", "up")
	ip(tb, "-n", name, "link", "set", "lo", "up")
}
