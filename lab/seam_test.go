package lab_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The runner, the workload, the fault scheduler and the reports know a
// backend only through this package: none of them may depend on the local
// backend, or a second backend would have to change them.
func TestNeutralPackagesDoNotImportABackend(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", "./runner/...", "./load/...", "./faults/...", "./reports/...", "./history/...", "./lab/...")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/chaosloop/chaosloop/clusters/") {
			bad = append(bad, p)
		}
	}
	require.Empty(t, bad, "backend packages in the neutral packages' dependencies")
	require.Contains(t, string(out), "github.com/chaosloop/chaosloop/runner", "go list saw the packages")
}
