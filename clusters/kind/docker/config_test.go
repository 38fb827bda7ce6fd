package docker

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDaemonConfig: every address of a dockerd chaosloop starts is inside
// 198.18.0.0/15, IPv6 is off, and the wrapper is the default runtime.
func TestDaemonConfig(t *testing.T) {
	d := &Daemon{StateDir: "/s", Runtime: []string{"/usr/bin/chaosloop", "oci-runtime"}}
	b, err := json.Marshal(d.config("/s/oci-runtime"))
	require.NoError(t, err)
	var c struct {
		Bip      string                  `json:"bip"`
		Pools    []struct{ Base string } `json:"default-address-pools"`
		IPv6     bool                    `json:"ipv6"`
		Default  string                  `json:"default-runtime"`
		Runtimes map[string]struct {
			Path string
			Args []string `json:"runtimeArgs"`
		} `json:"runtimes"`
		DataRoot string `json:"data-root"`
	}
	require.NoError(t, json.Unmarshal(b, &c))
	lab := netip.MustParsePrefix("198.18.0.0/15")
	bip := netip.MustParsePrefix(c.Bip)
	require.True(t, lab.Contains(bip.Addr()))
	require.Len(t, c.Pools, 1)
	require.True(t, lab.Contains(netip.MustParsePrefix(c.Pools[0].Base).Addr()))
	require.False(t, c.IPv6)
	require.Equal(t, RuntimeName, c.Default)
	require.Equal(t, "/s/oci-runtime", c.Runtimes[RuntimeName].Path)
	require.Equal(t, []string{"oci-runtime"}, c.Runtimes[RuntimeName].Args)
	require.Equal(t, "/s/data", c.DataRoot)
}
