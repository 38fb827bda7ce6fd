package lab

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A plan is checked against what the backend can inject before a run
// starts; the error names every fault it cannot.
func TestCapabilitiesCheck(t *testing.T) {
	c := Capabilities{Actions: map[string][]string{"power-off": {"node", "rack"}, "kill": {"service"}}}
	require.True(t, c.Supports("power-off", "rack"))
	require.False(t, c.Supports("power-off", "site"))
	require.NoError(t, c.Check("test", []Fault{{Action: "power-off", Target: "node/n1"}, {Action: "kill", Target: "service/db/0"}}))
	err := c.Check("test", []Fault{{Action: "power-off", Target: "site/a"}, {Action: "latency", Target: "link/a/b"}, {Action: "kill", Target: "service/db/0"}})
	require.EqualError(t, err, "the test backend cannot inject: power-off site; latency link")
}
