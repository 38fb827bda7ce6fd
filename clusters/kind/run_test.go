package kind_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc/bmctest"
	"github.com/chaosloop/chaosloop/clusters/kind"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/runner"
	"github.com/chaosloop/chaosloop/runner/runnertest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// runOnKind runs sc with chaosloop's whole job on the kind backend: real
// engines in pods, real faults on the node containers, transfer load,
// the checks. The lab's state and the run directory are kept with the
// evidence when the test fails.
func runOnKind(t *testing.T, sc *scenarios.Scenario, seed uint64, power *bmc.Inventory) *runner.Result {
	t.Helper()
	kindtest.Daemon(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	ev := enginetest.NewEvidence(t)
	root := ev.WorkDir("lab")
	p := kind.NewProvider(kind.Options{Root: root, Cache: filepath.Dir(kindtest.Cache), Log: enginetest.ProcessLog(),
		Runtime: []string{exe, kindtest.RuntimeArg}, DockerStateDir: kindtest.StateDir, Seed: seed, Power: power})
	t.Cleanup(func() {
		ev.Save(filepath.Join(root, sc.Name, "logs"), "logs")
		if err := p.Down(context.Background(), sc.Name); err != nil {
			t.Logf("down: %v", err)
		}
	})
	bin := filepath.Join(t.TempDir(), "chaosloop")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	res, err := runner.Run(context.Background(), runner.Options{
		Scenario: sc, Provider: p, RunsDir: ev.Sub("runs"), Seed: seed, Binary: bin, Log: enginetest.ProcessLog(),
	})
	require.NoError(t, err)
	require.NotNil(t, res.Report)
	require.Equal(t, kind.Name, res.Report.Backend)
	runnertest.LogReport(t, res.Report)
	return res
}

// TestGaleraTwoInOneRackFailsOnKind is the local lab's Galera negative
// control on kind: two of three Galera members share a rack, the rack
// loses power (its node containers are killed): chaosloop must report
// FAIL on quorum, as the local lab does, and lose no acknowledged money.
// The control plane is a node of its own in another site, so the API is
// not what fails.
//
// The rack's power goes through Redfish, as a real cluster's would: a
// BMC emulator (sushy-tools) whose systems are the rack's node
// containers, ForceOff killing and On starting them.
func TestGaleraTwoInOneRackFailsOnKind(t *testing.T) {
	sc := runnertest.Parse(t, "kneg-galera", runnertest.GaleraRack("kneg-galera", ", {name: cp, pools: [K3S-CONTROL-PLANE]}"))
	kindtest.Daemon(t)
	plan, err := kindlab.NewPlan(sc)
	require.NoError(t, err)
	var machines []bmctest.Machine
	for _, node := range []string{"a1", "a2"} {
		n, ok := plan.Node(node)
		require.True(t, ok, node)
		machines = append(machines, bmctest.Machine{Node: node, Container: n.Container})
	}
	power, logs := bmctest.RedfishInventory(t, machines...)
	runnertest.RequireGaleraQuorumFail(t, runOnKind(t, sc, 7, power).Report)
	for node, log := range logs {
		cycled, err := bmctest.PowerCycled(log)
		require.NoError(t, err, "node %s: its BMC never powered its container", node)
		require.True(t, cycled, "node %s went off and on through its BMC", node)
	}
}
