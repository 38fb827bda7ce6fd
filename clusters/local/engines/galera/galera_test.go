package galera

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func newLab(t *testing.T) (*Engine, *engines.Cluster) {
	t.Helper()
	enginetest.RequireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := New(log)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "cannot install galera: "+err.Error())
	}
	c := enginetest.Cluster(t, "galera", 3, 21)
	enginetest.LogTails(t, c, mariadb.ErrLog)
	return e, c
}

func kill(t *testing.T, c *engines.Cluster, i int) {
	t.Helper()
	enginetest.Kill(t, c.StateDir, mariadb.ProcName(c.Members[i]), 10*time.Second)
}

func openDB(t *testing.T, e *Engine, c *engines.Cluster, i int) *sql.DB {
	t.Helper()
	dsn, err := e.DSN(c, i)
	require.NoError(t, err)
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	// Reads wait until the member has applied everything it has received.
	cfg.Params = map[string]string{"wsrep_sync_wait": "1"}
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(0) // a killed member must not leave a dead pooled connection
	t.Cleanup(func() { db.Close() })
	return db
}

// waitStatus waits until cond holds for the cluster's status.
func waitStatus(t *testing.T, e *Engine, c *engines.Cluster, what string, cond func(engines.Status) error) engines.Status {
	t.Helper()
	return enginetest.WaitStatus(t, func(ctx context.Context) (engines.Status, error) { return e.Status(ctx, c) }, what, cond)
}

func TestGaleraKillRejoinRecover(t *testing.T) {
	e, c := newLab(t)
	ctx := context.Background()

	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("start: 3 members synced in %s", time.Since(t0).Round(time.Millisecond))
	for _, m := range c.Members {
		r, err := proc.Load(c.StateDir, mariadb.ProcName(m))
		require.NoError(t, err)
		t.Logf("%s RSS %d MiB", m.Name, enginetest.RSSKiB(r.PID)/1024)
	}
	st, err := e.Status(ctx, c)
	require.NoError(t, err)
	require.True(t, st.Writable)
	for i := range 3 {
		require.NoError(t, enginetest.MemberIs(i, true, true, "synced", "size=3")(st))
	}
	// Status is sampled twice a second during runs: report what it costs.
	ts := time.Now()
	for range 10 {
		_, err := e.Status(ctx, c)
		require.NoError(t, err)
	}
	t.Logf("Status takes %s", (time.Since(ts) / 10).Round(time.Microsecond))
	// Start is idempotent.
	require.NoError(t, e.Start(ctx, c))
	v, err := e.Version(ctx)
	require.NoError(t, err)
	t.Logf("version %s, endpoints %v", v, e.Endpoints(c))

	dbs := []*sql.DB{openDB(t, e, c, 0), openDB(t, e, c, 1), openDB(t, e, c, 2)}
	_, err = dbs[0].Exec("CREATE TABLE rows_ (id INT PRIMARY KEY, member INT)")
	require.NoError(t, err)
	var committed []int
	insert := func(member int) error {
		id := len(committed) + 1
		if _, err := dbs[member].Exec("INSERT INTO rows_ VALUES (?, ?)", id, member); err != nil {
			return err
		}
		committed = append(committed, id)
		return nil
	}
	for i := range 9 {
		require.NoError(t, insert(i%3))
	}

	// SIGKILL one member: the other two stay Primary, size 2, writable.
	t0 = time.Now()
	kill(t, c, 2)
	waitStatus(t, e, c, "two left in Primary", enginetest.All(
		enginetest.MemberIs(0, true, true, "synced", "size=2"), enginetest.MemberIs(1, true, true, "synced", "size=2"),
		enginetest.MemberIs(2, false, false, "", "not running")))
	t.Logf("one killed: others Primary/2 after %s", time.Since(t0).Round(time.Millisecond))
	for i := range 4 {
		require.NoError(t, insert(i%2))
	}

	// It rejoins (IST) and sees every row.
	t0 = time.Now()
	require.NoError(t, e.StartMember(ctx, c, 2))
	t.Logf("rejoin of killed member: %s", time.Since(t0).Round(time.Millisecond))
	waitStatus(t, e, c, "three again", enginetest.All(enginetest.MemberIs(0, true, true, "synced", "size=3"),
		enginetest.MemberIs(1, true, true, "synced", "size=3"), enginetest.MemberIs(2, true, true, "synced", "size=3")))
	requireRows(t, dbs[2], committed)
	require.NoError(t, insert(2))

	// Two killed at once: the survivor loses quorum and refuses writes.
	t0 = time.Now()
	kill(t, c, 1)
	kill(t, c, 2)
	st = waitStatus(t, e, c, "survivor non-Primary", enginetest.MemberIs(0, true, false, "non-primary", ""))
	t.Logf("two killed: survivor non-Primary after %s: %+v", time.Since(t0).Round(time.Millisecond), st.Members[0])
	require.False(t, st.Writable)
	_, err = dbs[0].Exec("INSERT INTO rows_ VALUES (?, ?)", 1000, 0)
	require.Error(t, err)
	var me *mysql.MySQLError
	require.ErrorAs(t, err, &me)
	require.EqualValues(t, 1047, me.Number, "WSREP has not yet prepared node for application use")

	// Recover: Primary again from the most advanced member, nothing lost.
	t0 = time.Now()
	require.NoError(t, e.Recover(ctx, c))
	t.Logf("recover after two kills: %s", time.Since(t0).Round(time.Millisecond))
	st = waitStatus(t, e, c, "recovered", enginetest.All(enginetest.MemberIs(0, true, true, "synced", "size=3"),
		enginetest.MemberIs(1, true, true, "synced", "size=3"), enginetest.MemberIs(2, true, true, "synced", "size=3")))
	require.True(t, st.Writable)
	for _, db := range dbs {
		requireRows(t, db, committed)
	}
	require.NoError(t, insert(1))

	// A member whose data is wiped rejoins by SST.
	kill(t, c, 1)
	waitStatus(t, e, c, "member 1 gone", enginetest.MemberIs(0, true, true, "synced", "size=2"))
	require.NoError(t, os.RemoveAll(c.Members[1].DataDir))
	t0 = time.Now()
	require.NoError(t, e.StartMember(ctx, c, 1))
	t.Logf("rejoin with wiped datadir (SST): %s", time.Since(t0).Round(time.Millisecond))
	requireRows(t, dbs[1], committed)
	require.NoError(t, insert(1))

	// Recover with a Primary component present bootstraps nothing: it only
	// makes sure every member runs (no second, diverging cluster).
	require.NoError(t, e.Recover(ctx, c))
	waitStatus(t, e, c, "still three", enginetest.MemberIs(0, true, true, "synced", "size=3"))
	require.NoError(t, insert(0))

	// A full power-off of all members, then Start: recovered by itself.
	kill(t, c, 0)
	kill(t, c, 1)
	kill(t, c, 2)
	t0 = time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("start after all killed: %s", time.Since(t0).Round(time.Millisecond))
	for _, db := range dbs {
		requireRows(t, db, committed)
	}

	require.NoError(t, e.Stop(ctx, c))
	st, err = e.Status(ctx, c)
	require.NoError(t, err)
	for _, m := range st.Members {
		require.False(t, m.Up)
	}
}

func requireRows(t *testing.T, db *sql.DB, want []int) {
	t.Helper()
	require.Equal(t, want, enginetest.QueryInts(t, db, "SELECT id FROM rows_ ORDER BY id"))
}
