package bmc_test

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
)

// TestMain: a dockerd the tests start runs this binary as its OCI runtime.
func TestMain(m *testing.M) { kindtest.Main(m) }

// TestPowerContainer powers a docker container, standing for a kind node,
// through both emulators wired to it: sushy-tools (Redfish ForceOff / On)
// and ipmi_sim (chassis power off / on). A power-off is a SIGKILL of the
// container (exit 137), a power-on starts it, and each BMC reports the
// container's state, however it got there.
func TestPowerContainer(t *testing.T) {
	node := bmctest.StartContainer(t)
	pw := randomPassword(t)
	redfishBMC := bmctest.StartSushy(t, "chaosloop", pw, bmctest.FakeSystem{UUID: systemA, Name: node, Container: node})
	ipmiBMC := bmctest.StartIPMISim(t, "chaosloop", pw, bmctest.IPMISimOptions{Container: node})
	t.Setenv("BMC_PASSWORD", pw)
	log, logs := testLog(t)
	controllers := []struct {
		name  string
		entry string
	}{
		{"redfish", "protocol: redfish, address: '" + redfishBMC.Addr + "'"},
		{"ipmi", "protocol: ipmi, address: '" + ipmiBMC.Addr + "'"},
	}
	cs := map[string]bmc.Controller{}
	for _, c := range controllers {
		ctl, err := bmc.New(t.Context(), log, inventoryOf(t, c.entry+", username: chaosloop, passwordEnv: BMC_PASSWORD"))
		require.NoError(t, err)
		cs[c.name] = ctl
	}
	for _, c := range controllers {
		t.Run("power cycle over "+c.name, func(t *testing.T) {
			containerCycle(t, log, cs[c.name], node)
		})
	}
	t.Run("state is the container's", func(t *testing.T) {
		// Killed and started behind the BMCs' backs (as the kind
		// backend's own power faults do), the node is off, then on, for
		// both.
		ctx, cancel := context.WithTimeout(t.Context(), cycleTimeout)
		defer cancel()
		for _, step := range []struct {
			docker []string
			want   bmc.State
		}{
			{[]string{"kill", "--signal", "KILL", node}, bmc.Off},
			{[]string{"start", node}, bmc.On},
		} {
			out, err := exec.CommandContext(ctx, "docker", step.docker...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, c := range controllers {
				s, err := cs[c.name].PowerState(ctx)
				require.NoError(t, err)
				require.Equal(t, step.want, s, "%s after docker %s", c.name, step.docker[0])
			}
		}
	})
	t.Run("a repeated power set", func(t *testing.T) {
		// ipmi_sim runs a request again for each retransmission of it
		// (go-ipmi resends after 1 s; a docker kill or start can take
		// longer on a busy machine): the chassis program it runs (here
		// called directly, as ipmi_sim does) succeeds when the container
		// is already in the state.
		chassis := filepath.Join(ipmiBMC.Dir, "chassis")
		for _, step := range []struct {
			power   string
			running bool
		}{{"0", false}, {"0", false}, {"1", true}, {"1", true}} {
			out, err := exec.CommandContext(t.Context(), chassis, "0x20", "set", "power", step.power).CombinedOutput()
			require.NoError(t, err, "set power %s: %s", step.power, out)
			require.Equal(t, step.running, bmctest.InspectContainer(t, node).Running)
		}
	})
	require.NotContains(t, logs.String(), pw)
}

// containerCycle powers node off and on through c, checking the container
// each time, and logs the measured transition times.
func containerCycle(t *testing.T, log *slog.Logger, c bmc.Controller, node string) {
	ctx, cancel := context.WithTimeout(t.Context(), cycleTimeout)
	defer cancel()
	s, err := c.PowerState(ctx)
	require.NoError(t, err)
	require.Equal(t, bmc.On, s)
	require.True(t, bmctest.InspectContainer(t, node).Running)

	off := transition(t, ctx, log, c, bmc.Off)
	require.Equal(t, bmctest.ContainerState{Running: false, ExitCode: 137}, bmctest.InspectContainer(t, node),
		"a power-off is a SIGKILL of the container")
	on := transition(t, ctx, log, c, bmc.On)
	require.Equal(t, bmctest.ContainerState{Running: true, ExitCode: 0}, bmctest.InspectContainer(t, node))
	t.Logf("measured: power-off %s, power-on %s (request to state reported)", off.Round(time.Millisecond), on.Round(time.Millisecond))
}
