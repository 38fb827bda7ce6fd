package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// asyncLab is a 3-member async cluster on 127.0.0.31-33 and what the test
// wrote through its primary.
type asyncLab struct {
	t         *testing.T
	e         *Engine
	c         *engines.Cluster
	dbs       []*sql.DB
	committed []int
}

func newAsyncLab(t *testing.T) *asyncLab {
	t.Helper()
	enginetest.RequireRoot(t)
	e := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "cannot install mariadb: "+err.Error())
	}
	c := enginetest.Cluster(t, "mysqlasync", 3, 31)
	enginetest.LogTails(t, c, ErrLog)
	return &asyncLab{t: t, e: e, c: c}
}

// open opens a pool to every member; call after Start.
func (l *asyncLab) open() {
	for i := range l.c.Members {
		dsn, err := l.e.DSN(l.c, i)
		require.NoError(l.t, err)
		cfg, err := mysql.ParseDSN(dsn)
		require.NoError(l.t, err)
		conn, err := mysql.NewConnector(cfg)
		require.NoError(l.t, err)
		db := sql.OpenDB(conn)
		db.SetMaxIdleConns(0) // a killed member must not leave a dead pooled connection
		l.t.Cleanup(func() { db.Close() })
		l.dbs = append(l.dbs, db)
	}
}

func (l *asyncLab) status(what string, conds ...func(engines.Status) error) engines.Status {
	l.t.Helper()
	return enginetest.WaitStatus(l.t, func(ctx context.Context) (engines.Status, error) { return l.e.Status(ctx, l.c) },
		what, enginetest.All(conds...))
}

// allHealthy: member 0 the writable primary, the others replicating.
func (l *asyncLab) allHealthy(what string) engines.Status {
	l.t.Helper()
	st := l.status(what, enginetest.MemberIs(0, true, true, "primary", "read_only=false"),
		enginetest.MemberIs(1, true, true, "replica", "io=Yes sql=Yes"),
		enginetest.MemberIs(2, true, true, "replica", "io=Yes sql=Yes"))
	require.True(l.t, st.Writable)
	return st
}

func (l *asyncLab) kill(i int) {
	l.t.Helper()
	enginetest.Kill(l.t, l.c.StateDir, ProcName(l.c.Members[i]), 10*time.Second)
}

// insert writes one more row through member i.
func (l *asyncLab) insert(i int) error {
	id := len(l.committed) + 1
	if _, err := l.dbs[i].Exec("INSERT INTO rows_ VALUES (?, ?)", id, i); err != nil {
		return err
	}
	l.committed = append(l.committed, id)
	return nil
}

// caughtUp waits until member i holds exactly the committed rows.
func (l *asyncLab) caughtUp(i int) time.Duration {
	l.t.Helper()
	t0 := time.Now()
	err := engines.WaitFor(context.Background(), 60*time.Second, 100*time.Millisecond, fmt.Sprintf("member %d caught up", i),
		func(context.Context) error {
			got := enginetest.QueryInts(l.t, l.dbs[i], "SELECT id FROM rows_ ORDER BY id")
			if fmt.Sprint(got) != fmt.Sprint(l.committed) {
				return fmt.Errorf("has %d rows, want %d", len(got), len(l.committed))
			}
			return nil
		})
	require.NoError(l.t, err)
	return time.Since(t0)
}

// refusesWrite: a write on member i fails with 1290 (read-only).
func (l *asyncLab) refusesWrite(i int) {
	l.t.Helper()
	_, err := l.dbs[i].Exec("INSERT INTO rows_ VALUES (?, ?)", 100000+i, i)
	var me *mysql.MySQLError
	require.ErrorAs(l.t, err, &me)
	require.EqualValues(l.t, 1290, me.Number, "ER_OPTION_PREVENTS_STATEMENT (--read-only): %v", err)
}

func TestAsyncReplication(t *testing.T) {
	l := newAsyncLab(t)
	ctx := context.Background()

	t0 := time.Now()
	require.NoError(t, l.e.Start(ctx, l.c))
	t.Logf("start: primary and 2 replicas replicating in %s", time.Since(t0).Round(time.Millisecond))
	l.allHealthy("up")
	for _, m := range l.c.Members {
		r, err := proc.Load(l.c.StateDir, ProcName(m))
		require.NoError(t, err)
		t.Logf("%s RSS %d MiB", m.Name, enginetest.RSSKiB(r.PID)/1024)
	}
	ts := time.Now()
	for range 10 {
		_, err := l.e.Status(ctx, l.c)
		require.NoError(t, err)
	}
	t.Logf("Status takes %s", (time.Since(ts) / 10).Round(time.Microsecond))
	require.NoError(t, l.e.Start(ctx, l.c), "Start is idempotent")

	l.open()
	_, err := l.dbs[0].Exec("CREATE TABLE rows_ (id INT PRIMARY KEY, member INT)")
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, l.insert(0))
	}
	t.Logf("writes on the primary visible on replicas after %s, %s", l.caughtUp(1), l.caughtUp(2))
	// Negative control: replicas are read-only for the workload account.
	l.refusesWrite(1)
	l.refusesWrite(2)
	// The ledger's Galera causality waits are accepted (and do nothing).
	_, err = l.dbs[1].Exec("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM rows_")
	require.NoError(t, err)

	testPrimaryKilled(t, l)
	testReplicaKilled(t, l)
	testReplicaWiped(t, l)
	testReplicaWipedWhilePrimaryDown(t, l)
	testPrimaryWiped(t, l)

	require.NoError(t, l.e.Stop(ctx, l.c))
	st, err := l.e.Status(ctx, l.c)
	require.NoError(t, err)
	for _, m := range st.Members {
		require.False(t, m.Up)
	}
	require.False(t, st.Writable)
}

// kill -9 of the primary: no failover; replicas answer reads and refuse
// writes until it is back, then catch up.
func testPrimaryKilled(t *testing.T, l *asyncLab) {
	t0 := time.Now()
	l.kill(0)
	st := l.status("primary gone", enginetest.MemberIs(0, false, false, "primary", "not running"),
		enginetest.MemberIs(1, true, false, "replica", "io=Connecting"),
		enginetest.MemberIs(2, true, false, "replica", "io=Connecting"))
	t.Logf("primary killed: replicas up, read-only, reconnecting after %s", time.Since(t0).Round(time.Millisecond))
	require.False(t, st.Writable)
	for _, i := range []int{1, 2} {
		l.refusesWrite(i)
		require.Equal(t, l.committed, enginetest.QueryInts(t, l.dbs[i], "SELECT id FROM rows_ ORDER BY id"), "reads work")
	}
	require.Error(t, l.insert(0), "the primary is gone")

	t0 = time.Now()
	require.NoError(t, l.e.StartMember(context.Background(), l.c, 0))
	l.allHealthy("primary back")
	t.Logf("primary restarted: writable and replicas replicating after %s", time.Since(t0).Round(time.Millisecond))
	for range 3 {
		require.NoError(t, l.insert(0))
	}
	t.Logf("replicas caught up after %s, %s", l.caughtUp(1), l.caughtUp(2))
}

// A killed replica resumes from its GTID position.
func testReplicaKilled(t *testing.T, l *asyncLab) {
	l.kill(2)
	st := l.status("replica 2 gone", enginetest.MemberIs(2, false, false, "replica", "not running"))
	require.True(t, st.Writable, "a replica's loss leaves the primary writable")
	for range 3 {
		require.NoError(t, l.insert(0))
	}
	t0 := time.Now()
	require.NoError(t, l.e.StartMember(context.Background(), l.c, 2))
	t.Logf("replica restarted and replicating in %s, caught up %s later", time.Since(t0).Round(time.Millisecond), l.caughtUp(2))
	l.allHealthy("replica back")
}

// A replica whose data is gone is re-seeded from the primary.
func testReplicaWiped(t *testing.T, l *asyncLab) {
	l.kill(1)
	require.NoError(t, os.RemoveAll(l.c.Members[1].DataDir))
	require.NoError(t, l.insert(0))
	t0 := time.Now()
	require.NoError(t, l.e.StartMember(context.Background(), l.c, 1))
	t.Logf("wiped replica re-seeded in %s", time.Since(t0).Round(time.Millisecond))
	l.caughtUp(1)
	require.NoError(t, l.insert(0))
	l.caughtUp(1)
	l.refusesWrite(1)
	l.allHealthy("re-seeded replica replicating")
}

// A replica whose data is gone while the primary is down is seeded from
// the other replica and follows the primary once it is back. The source
// replica was itself seeded and has received nothing since: its position
// is only in gtid_slave_pos, not in its binary log.
func testReplicaWipedWhilePrimaryDown(t *testing.T, l *asyncLab) {
	ctx := context.Background()
	l.kill(1)
	require.NoError(t, os.RemoveAll(l.c.Members[1].DataDir))
	require.NoError(t, l.e.StartMember(ctx, l.c, 1))
	l.caughtUp(1)
	l.kill(0)
	l.kill(2)
	require.NoError(t, os.RemoveAll(l.c.Members[2].DataDir))
	t0 := time.Now()
	require.NoError(t, l.e.StartMember(ctx, l.c, 2))
	t.Logf("replica wiped while the primary is down: seeded from the other replica in %s", time.Since(t0).Round(time.Millisecond))
	l.caughtUp(2)
	l.refusesWrite(2)
	require.NoError(t, l.e.StartMember(ctx, l.c, 0))
	l.allHealthy("primary back after a replica was seeded from another")
	require.NoError(t, l.insert(0))
	l.caughtUp(1)
	l.caughtUp(2)
}

// A primary whose data is gone is re-seeded from the most advanced
// replica, stays member 0, and the replicas follow it again.
func testPrimaryWiped(t *testing.T, l *asyncLab) {
	l.caughtUp(1)
	l.caughtUp(2)
	l.kill(0)
	require.NoError(t, os.RemoveAll(l.c.Members[0].DataDir))
	t0 := time.Now()
	require.NoError(t, l.e.StartMember(context.Background(), l.c, 0))
	l.allHealthy("primary restored")
	t.Logf("wiped primary restored from a replica in %s", time.Since(t0).Round(time.Millisecond))
	l.caughtUp(0)
	for range 3 {
		require.NoError(t, l.insert(0))
	}
	l.caughtUp(1)
	l.caughtUp(2)
}
