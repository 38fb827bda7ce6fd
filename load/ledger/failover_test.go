package ledger

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// A member that stops answering leaves rotation at its first failure; when
// it was the writer, the transactions that follow wait until Galera has
// dropped it from the Primary component and then go to the member elected
// in its place, without touching it (each touch would cost a read
// timeout). Health probes put it back in rotation once it is Primary and
// Synced again, but the writes stay where they are.
func TestFailedMemberStaysOutUntilHealthy(t *testing.T) {
	enginetest.RequireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := galera.New(log)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "cannot install galera: "+err.Error())
	}
	c := enginetest.Cluster(t, "ledger-fo", 3, 71)
	require.NoError(t, e.Start(ctx, c))
	var dsns []string
	for i := range c.Members {
		dsn, err := e.DSN(c, i)
		require.NoError(t, err)
		dsns = append(dsns, dsn)
	}
	s, err := Open(Options{DSNs: dsns, Log: log, ProbeEvery: 300 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()

	// used counts the transactions attempted on each member.
	var mu sync.Mutex
	used := make([]int, len(dsns))
	ping := func() error {
		return s.do(ctx, func(ctx context.Context, db *sql.DB) error {
			for i, d := range s.dbs {
				if d == db {
					mu.Lock()
					used[i]++
					mu.Unlock()
				}
			}
			_, err := db.ExecContext(ctx, "SELECT 1")
			return err
		})
	}
	require.NoError(t, ping())
	require.Equal(t, []int{1, 0, 0}, used)

	// Freeze member 0: its connections hang (no RST), as on a cut link.
	var rec *proc.Record
	recs, err := proc.List(c.StateDir)
	require.NoError(t, err)
	for _, r := range recs {
		if strings.HasPrefix(r.Name, c.Members[0].Name) {
			rec = r
		}
	}
	require.NotNil(t, rec, "member 0's mariadbd")
	require.NoError(t, rec.Signal(syscall.SIGSTOP))
	defer func() { _ = rec.Signal(syscall.SIGCONT) }()
	// kill(2) returns before the stop takes effect: the kernel wakes one
	// thread, which then stops the others. Until every thread is stopped
	// mariadbd still answers, and the next transaction would succeed on
	// member 0 and the one after it be the one to time out.
	sent, polls := time.Now(), 0
	for ; !allStopped(rec.PID); polls++ {
		require.Less(t, time.Since(sent), 10*time.Second, "member 0's mariadbd stops")
		time.Sleep(time.Millisecond)
	}
	t.Logf("member 0's mariadbd stopped %s after SIGSTOP (%d polls found a thread running)", time.Since(sent), polls)
	// The pooled connection to it times out (the DSN's read timeout); the
	// transaction is retried on member 1.
	require.NoError(t, ping(), "fails over to member 1")
	// For several probe periods while it stays frozen, every transaction
	// goes to member 1 and the probes keep member 0 out.
	for range 10 {
		require.NoError(t, ping())
		time.Sleep(300 * time.Millisecond)
	}
	mu.Lock()
	touched0 := used[0]
	mu.Unlock()
	require.LessOrEqual(t, touched0, 2, "member 0 taken out of rotation after failing: %v", used)
	require.GreaterOrEqual(t, used[1], 11, "%v", used)
	s.mu.Lock()
	require.True(t, s.bad[0])
	s.mu.Unlock()

	// Thaw it: once Galera has it Primary and Synced again it is back in
	// rotation, but the writes stay on the writer the cluster elected
	// meanwhile (no failback: two Stores failing back at different moments
	// would write one row through two members).
	require.NoError(t, rec.Signal(syscall.SIGCONT))
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return !s.bad[0]
	}, 2*time.Minute, 200*time.Millisecond, "member 0 back in rotation")
	before := used[0]
	require.NoError(t, ping())
	require.Equal(t, before, used[0], "writes stay on the elected writer")

	// Another Store that prefers member 0, as a handler on member 0's
	// site would, writes through the same member as the first.
	other, err := Open(Options{DSNs: dsns, Log: log, ProbeEvery: 300 * time.Millisecond})
	require.NoError(t, err)
	defer other.Close()
	w, err := other.pick(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, w, "a new Store joins the cluster's writer, not its own first choice")
}

// allStopped says whether every thread of process pid is stopped (state T;
// a thread that has exited counts too).
func allStopped(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		f, err := proc.StatFields(dir + "/" + task.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if f[0] != "T" && f[0] != "Z" && f[0] != "X" {
			return false
		}
	}
	return true
}
