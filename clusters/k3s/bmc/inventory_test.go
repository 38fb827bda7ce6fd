package bmc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Each testdata/invalid-*.yaml ends with the problems it must produce,
// in order, as "# want: LINE:COL: MESSAGE" comments (at its end, so they
// move no line): the error is every one of them at once.
func TestInvalidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	require.GreaterOrEqual(t, len(files), 10)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, f+":"+w)
				}
			}
			require.NotEmpty(t, want, "file has no '# want:' lines")
			inv, err := bmc.Load(f)
			require.Nil(t, inv)
			var errs scenarios.Errors
			require.ErrorAs(t, err, &errs)
			require.Equal(t, strings.Join(want, "\n"), err.Error())
		})
	}
}

func TestValidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	require.GreaterOrEqual(t, len(files), 2)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			inv, err := bmc.Load(f)
			require.NoError(t, err)
			require.NotEmpty(t, inv.BMCs)
			require.NoError(t, inv.Validate())
		})
	}
}

// Defaults are applied where they are used: the decoded inventory is what
// the file says, and validating it changes nothing.
func TestDefaultsAndNoMutation(t *testing.T) {
	inv, err := bmc.Load("testdata/valid-mixed.yaml")
	require.NoError(t, err)
	before := *inv
	before.BMCs = append([]bmc.BMC(nil), inv.BMCs...)
	require.NoError(t, inv.Validate())
	require.Equal(t, before, *inv)

	db1, ok := inv.Lookup("db-1")
	require.True(t, ok)
	require.Empty(t, db1.Interface)
	require.Equal(t, bmc.Lanplus, db1.IPMIInterface())
	host, port, err := db1.HostPort()
	require.NoError(t, err)
	require.Equal(t, "10.0.0.13", host)
	require.Equal(t, bmc.DefaultIPMIPort, port)

	db2, _ := inv.Lookup("db-2")
	host, port, err = db2.HostPort()
	require.NoError(t, err)
	require.Equal(t, "fd00::14", host)
	require.Equal(t, 6230, port)
	require.Equal(t, bmc.Lan, db2.IPMIInterface())

	_, ok = inv.Lookup("nobody")
	require.False(t, ok)
}

func TestTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	data := []byte("bmcs:\n" + strings.Repeat("# padding\n", bmc.MaxFileBytes/10+1))
	require.NoError(t, os.WriteFile(path, data, 0o600))
	_, err := bmc.Load(path)
	require.EqualError(t, err, path+":1:1: the file is longer than 1 MiB, the most a BMC inventory may be")
}
