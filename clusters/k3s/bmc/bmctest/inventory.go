package bmctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
)

// Machine is a scenario node and the docker container that is its server.
type Machine struct{ Node, Container string }

// PasswordEnv holds the BMCs' password in the tests, as an adopter's
// environment would: the inventory names the variable, never the secret.
const PasswordEnv = "CHAOSLOOP_TEST_BMC_PASSWORD"

// RedfishInventory starts one sushy-tools Redfish service with a system
// per machine, each powering the machine's container (ForceOff kills it,
// On starts it), and returns the BMC inventory naming them with each
// system's chassis log by node (its "set power" lines). It sets
// PasswordEnv for the test.
func RedfishInventory(t *testing.T, machines ...Machine) (*bmc.Inventory, map[string]string) {
	t.Helper()
	const user = "chaosloop"
	pw := "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Setenv(PasswordEnv, pw)
	var systems []FakeSystem
	for i, m := range machines {
		systems = append(systems, FakeSystem{UUID: fmt.Sprintf("6c0b6a1e-0000-4000-8000-%012d", i+1), Name: m.Node, Container: m.Container})
	}
	srv := StartSushy(t, user, pw, systems...)
	var inv strings.Builder
	logs := map[string]string{}
	inv.WriteString("bmcs:\n")
	for _, sys := range systems {
		fmt.Fprintf(&inv, "  - {node: %s, protocol: redfish, address: '%s', system: '%s', username: %s, passwordEnv: %s}\n",
			sys.Name, srv.Addr, sys.UUID, user, PasswordEnv)
		logs[sys.Name] = filepath.Join(srv.Dir, "chassis-"+sys.UUID+".log")
	}
	return loadInventory(t, inv.String()), logs
}

// IPMIInventory is RedfishInventory over IPMI: an ipmi_sim per machine
// (one chassis each), its chassis power the machine's container.
func IPMIInventory(t *testing.T, machines ...Machine) (*bmc.Inventory, map[string]string) {
	t.Helper()
	const user = "chaosloop"
	pw := "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Setenv(PasswordEnv, pw)
	var inv strings.Builder
	logs := map[string]string{}
	inv.WriteString("bmcs:\n")
	for _, m := range machines {
		srv := StartIPMISim(t, user, pw, IPMISimOptions{Container: m.Container})
		fmt.Fprintf(&inv, "  - {node: %s, protocol: ipmi, address: '%s', username: %s, passwordEnv: %s}\n", m.Node, srv.Addr, user, PasswordEnv)
		logs[m.Node] = filepath.Join(srv.Dir, "chassis.log")
	}
	return loadInventory(t, inv.String()), logs
}

// loadInventory loads an inventory file's text as bmc.Load does.
func loadInventory(t *testing.T, text string) *bmc.Inventory {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bmcs.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	power, err := bmc.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return power
}

// PowerCycled says whether a chassis log (RedfishInventory's or
// IPMIInventory's) shows its machine powered off and then on through its
// BMC.
func PowerCycled(log string) (bool, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return false, err
	}
	s := string(b)
	off := strings.Index(s, "set power 0: ok")
	return off >= 0 && strings.Contains(s[off:], "set power 1: ok"), nil
}
