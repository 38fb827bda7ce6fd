package bmc_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
)

// TestIPMI drives OpenIPMI's ipmi_sim: a power cycle over lanplus and
// over lan, a wait that times out, and a wrong password.
func TestIPMI(t *testing.T) {
	pw := randomPassword(t)
	srv := bmctest.StartIPMISim(t, "chaosloop", pw, bmctest.IPMISimOptions{})
	t.Setenv("BMC_PASSWORD", pw)
	t.Setenv("BMC_WRONG_PASSWORD", pw+"x")
	log, logs := testLog(t)
	entry := "protocol: ipmi, address: '" + srv.Addr + "', username: chaosloop, "

	for _, intf := range []string{bmc.Lanplus, bmc.Lan} {
		t.Run("power cycle over "+intf, func(t *testing.T) {
			c, err := bmc.New(t.Context(), log, inventoryOf(t, entry+"passwordEnv: BMC_PASSWORD, interface: "+intf))
			require.NoError(t, err)
			powerCycle(t, log, c)
		})
	}
	t.Run("wait bounded by its context", func(t *testing.T) {
		c, err := bmc.New(t.Context(), log, inventoryOf(t, entry+"passwordEnv: BMC_PASSWORD"))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		// Nobody asked for off: the wait ends with its context.
		took, err := bmc.WaitFor(ctx, log, c, bmc.Off)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "power state still on after")
		// Bounded, not timed: a session in flight at the deadline ends
		// with it, and its close is cut to ipmiCloseWait (a busy machine
		// adds its own delay; an unbounded close held 2.5 s more).
		require.Less(t, took, 5*time.Second)
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := bmc.New(t.Context(), log, inventoryOf(t, entry+"passwordEnv: BMC_WRONG_PASSWORD"))
		require.ErrorContains(t, err, `node node-1: no IPMI lanplus session with `+srv.Addr+` as user "chaosloop" (wrong username or password in environment variable BMC_WRONG_PASSWORD`)
		require.NotContains(t, err.Error(), pw)
		t.Logf("as the operator reads it: %v", err)
	})
	require.NotContains(t, logs.String(), pw)
}

// TestIPMIPowerHooks: ipmi_sim runs a command when its chassis is turned
// off or on (here one that records the call; in a lab, one that stops or
// starts a machine). A cycle runs each once, however often it is asked
// for, and a command that fails fails the request.
func TestIPMIPowerHooks(t *testing.T) {
	pw := randomPassword(t)
	calls := filepath.Join(t.TempDir(), "calls")
	srv := bmctest.StartIPMISim(t, "chaosloop", pw, bmctest.IPMISimOptions{
		PowerOff: "echo off >> " + calls,
		PowerOn:  "echo on >> " + calls,
	})
	t.Setenv("BMC_PASSWORD", pw)
	log, _ := testLog(t)
	c, err := bmc.New(t.Context(), log, inventoryOf(t, "protocol: ipmi, address: '"+srv.Addr+"', username: chaosloop, passwordEnv: BMC_PASSWORD"))
	require.NoError(t, err)
	powerCycle(t, log, c)
	got, err := os.ReadFile(calls)
	require.NoError(t, err)
	require.Equal(t, "off\non\n", string(got))

	broken := bmctest.StartIPMISim(t, "chaosloop", pw, bmctest.IPMISimOptions{PowerOff: "exit 3"})
	c, err = bmc.New(t.Context(), log, inventoryOf(t, "protocol: ipmi, address: '"+broken.Addr+"', username: chaosloop, passwordEnv: BMC_PASSWORD"))
	require.NoError(t, err)
	err = c.PowerOff(t.Context())
	require.ErrorContains(t, err, "node node-1: IPMI "+broken.Addr+": chassis power off: ")
	t.Logf("a power-off the BMC could not do, as the operator reads it: %v", err)
}

// A lanplus BMC that does not answer fails New once, not once per cipher
// suite (5 s each, eleven suites). The socket is held and never read: a
// BMC that is down, as a black hole, not a refusal.
func TestIPMINoBMC(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer conn.Close()
	addr := conn.LocalAddr().String()
	t.Setenv("BMC_PASSWORD", randomPassword(t))
	log, _ := testLog(t)
	start := time.Now()
	_, err = bmc.New(t.Context(), log, inventoryOf(t, "protocol: ipmi, address: '"+addr+"', username: u, passwordEnv: BMC_PASSWORD"))
	require.ErrorContains(t, err, "node node-1: no IPMI lanplus session with "+addr)
	took := time.Since(start)
	t.Logf("New gave up after %s: %v", took.Round(time.Millisecond), err)
	require.Less(t, took, 15*time.Second)
}
