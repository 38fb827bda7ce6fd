package nodelabels

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestZoneFitsALabel(t *testing.T) {
	long := strings.Repeat("a", 63)
	z := ZoneOf(long, long)
	require.LessOrEqual(t, len(z), 63)
	require.NotEqual(t, z, ZoneOf(long, long[:62]+"b"))
}

func TestOwned(t *testing.T) {
	for _, k := range []string{Region, Zone, Site, Rack, "pool.chaosloop.io/x", "feed.chaosloop.io/a", "switch.chaosloop.io/b"} {
		require.True(t, Owned(k), k)
	}
	for _, k := range []string{"kubernetes.io/hostname", "node-role.kubernetes.io/control-plane", "chaosloop.io/other", "example.com/pool.chaosloop.io/x"} {
		require.False(t, Owned(k), k)
	}
	require.False(t, Removable(Region))
	require.True(t, Removable("pool.chaosloop.io/x"))
}
