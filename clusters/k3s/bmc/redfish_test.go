package bmc_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
)

const (
	systemA = "4f1c2a52-7d1e-4b3a-9d55-1b5c0a0e6a01"
	systemB = "4f1c2a52-7d1e-4b3a-9d55-1b5c0a0e6a02"
)

// TestRedfish drives sushy-tools' Redfish emulator (fake driver, HTTP
// basic auth) with two systems: a power cycle of one, named by Id, then
// the errors an operator can make.
func TestRedfish(t *testing.T) {
	pw := randomPassword(t)
	srv := bmctest.StartSushy(t, "chaosloop", pw,
		bmctest.FakeSystem{UUID: systemA, Name: "node-a", On: true},
		bmctest.FakeSystem{UUID: systemB, Name: "node-b"})
	t.Setenv("BMC_PASSWORD", pw)
	t.Setenv("BMC_WRONG_PASSWORD", pw+"-wrong")
	log, logs := testLog(t)
	entry := "protocol: redfish, address: '" + srv.Addr + "', username: chaosloop, "

	t.Run("power cycle", func(t *testing.T) {
		c, err := bmc.New(t.Context(), log, inventoryOf(t, entry+"passwordEnv: BMC_PASSWORD, system: "+systemA))
		require.NoError(t, err)
		powerCycle(t, log, c)
	})
	t.Run("system by path", func(t *testing.T) {
		c, err := bmc.New(t.Context(), log, inventoryOf(t, entry+"passwordEnv: BMC_PASSWORD, system: /redfish/v1/Systems/"+systemB))
		require.NoError(t, err)
		s, err := c.PowerState(t.Context())
		require.NoError(t, err)
		require.Equal(t, bmc.Off, s)
	})
	var errs []error
	fails := func(t *testing.T, source, want string) {
		_, err := bmc.New(t.Context(), log, inventoryOf(t, entry+source))
		require.ErrorContains(t, err, want)
		errs = append(errs, err)
		t.Logf("as the operator reads it: %v", err)
	}
	t.Run("wrong password", func(t *testing.T) {
		fails(t, "passwordEnv: BMC_WRONG_PASSWORD, system: "+systemA,
			`node node-1: the Redfish service at `+srv.Addr+` refused user "chaosloop" (HTTP 401) while listing systems: check username and the password in environment variable BMC_WRONG_PASSWORD`)
	})
	t.Run("unknown system", func(t *testing.T) {
		fails(t, "passwordEnv: BMC_PASSWORD, system: node-c",
			`node node-1: the Redfish service at `+srv.Addr+` has no system "node-c"; it has: /redfish/v1/Systems/`)
	})
	t.Run("no system named of two", func(t *testing.T) {
		fails(t, "passwordEnv: BMC_PASSWORD",
			`node node-1: the Redfish service at `+srv.Addr+` has 2 systems; name one with system (an Id or @odata.id): /redfish/v1/Systems/`)
	})
	for _, err := range errs {
		require.NotContains(t, err.Error(), pw)
	}
	require.NotContains(t, logs.String(), pw)
}
