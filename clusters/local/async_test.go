package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/lab/labtest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// asyncScenario: one async mysql service, one member per site.
func asyncScenario(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	src := fmt.Sprintf(`name: %s
sites:
  - {name: a, racks: [{name: r1, power: [a-p], switches: [a-s], nodes: [{name: a1, pools: [P]}]}]}
  - {name: b, racks: [{name: r1, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [P]}]}]}
  - {name: c, racks: [{name: r1, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [P]}]}]}
services:
  - {name: db, kind: mysql, replication: async, pool: P, spread: site}
`, name)
	s, err := scenarios.Decode(name+".yaml", []byte(src))
	require.NoError(t, err)
	d := s.WithDefaults()
	require.NoError(t, d.Validate())
	return d
}

// writableIs waits until the db service's writability is want.
func writableIs(t *testing.T, l *local.Lab, want bool) lab.ServiceStatus {
	t.Helper()
	var si lab.ServiceStatus
	labtest.Eventually(t, 90*time.Second, fmt.Sprintf("db writable=%t", want), func() error {
		var err error
		if si, err = l.ServiceStatus(context.Background(), "db"); err != nil {
			return err
		}
		if si.Writable != want {
			return errors.New(fmt.Sprint(si.Members))
		}
		return nil
	})
	return si
}

// replication: async runs as MariaDB async replication in the lab: member
// 0 is the primary, no failover when it loses power or is cut off
// (read-only until it is back), and a destroyed replica is re-seeded on
// recovery.
func TestLabAsyncMySQL(t *testing.T) {
	enginetest.RequireRoot(t)
	ctx := context.Background()
	root, ev := labRoot(t)
	opts := local.Options{Root: root, Cache: filepath.Join(os.TempDir(), "chaosloop-test-cache"), Log: enginetest.ProcessLog()}
	name := "labasync"
	_ = local.DownByName(ctx, opts, name)
	t0 := time.Now()
	l, err := local.Up(ctx, opts, asyncScenario(t, name))
	t.Cleanup(func() {
		// Down deletes the lab's state, its engine logs included.
		ev.Save(filepath.Join(opts.StateDir(name), "logs"), "logs")
		if l != nil {
			_ = l.Down(context.Background())
		}
	})
	require.NoError(t, err)
	t.Logf("up in %s", time.Since(t0).Round(time.Millisecond))
	si := writableIs(t, l, true)
	require.Equal(t, local.EngineMariaDB, si.Engine)
	require.Empty(t, si.Substitute)
	require.Equal(t, []string{"primary", "replica", "replica"}, []string{si.Members[0].Role, si.Members[1].Role, si.Members[2].Role})
	dsns, err := l.MySQLDSNs("db")
	require.NoError(t, err)
	require.Len(t, dsns, 3)

	f := lab.Fault{Action: "power-off", Target: "node/" + si.Members[0].Node}
	_, err = l.Inject(ctx, f)
	require.NoError(t, err)
	t0 = time.Now()
	st := writableIs(t, l, false)
	t.Logf("primary powered off: not writable after %s, replicas up: %t %t", time.Since(t0).Round(time.Millisecond), st.Members[1].Up, st.Members[2].Up)
	require.True(t, st.Members[1].Up && st.Members[2].Up, "replicas keep serving reads")
	require.NoError(t, l.Recover(ctx, f))
	labtest.Eventually(t, 120*time.Second, "every member healthy", func() error { return labtest.AllHealthy(context.Background(), l) })
	writableIs(t, l, true)

	// Cut off, the primary still answers on its socket, but the serving
	// component (the two replicas) cannot write: read-only, as analyze says.
	f = lab.Fault{Action: "isolate", Target: "node/" + si.Members[0].Node}
	_, err = l.Inject(ctx, f)
	require.NoError(t, err)
	t0 = time.Now()
	writableIs(t, l, false)
	t.Logf("primary isolated: not writable after %s", time.Since(t0).Round(time.Millisecond))
	require.NoError(t, l.Recover(ctx, f))
	t0 = time.Now()
	labtest.Eventually(t, 120*time.Second, "every member healthy", func() error { return labtest.AllHealthy(context.Background(), l) })
	writableIs(t, l, true)
	t.Logf("isolation healed: writable and replicating after %s", time.Since(t0).Round(time.Millisecond))

	f = lab.Fault{Action: "destroy", Target: "node/" + si.Members[2].Node}
	_, err = l.Inject(ctx, f)
	require.NoError(t, err)
	require.True(t, writableIs(t, l, true).Writable, "a replica's loss leaves the primary writable")
	t0 = time.Now()
	require.NoError(t, l.Recover(ctx, f))
	labtest.Eventually(t, 120*time.Second, "destroyed replica re-seeded", func() error { return labtest.AllHealthy(context.Background(), l) })
	t.Logf("destroyed replica re-seeded and replicating %s after recovery", time.Since(t0).Round(time.Millisecond))

	require.NoError(t, l.Down(ctx))
	l = nil
	assertGone(t, opts, name)
}
