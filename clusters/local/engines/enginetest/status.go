package enginetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
)

// StatusFunc samples a cluster's status (an engine's Status, bound to
// its cluster).
type StatusFunc func(ctx context.Context) (engines.Status, error)

// WaitStatus waits up to 90 s until cond holds for the status and returns
// it; the test fails with the last status otherwise.
func WaitStatus(tb testing.TB, status StatusFunc, what string, cond func(engines.Status) error) engines.Status {
	tb.Helper()
	var st engines.Status
	err := engines.WaitFor(context.Background(), 90*time.Second, 250*time.Millisecond, what, func(ctx context.Context) error {
		var err error
		if st, err = status(ctx); err != nil {
			return err
		}
		return cond(st)
	})
	require.NoError(tb, err, "last status: %+v", st)
	return st
}

// MemberIs holds when member i is up and healthy as given, has role (""
// = any) and its detail contains detail.
func MemberIs(i int, up, healthy bool, role, detail string) func(engines.Status) error {
	return func(st engines.Status) error {
		m := st.Members[i]
		if m.Up != up || m.Healthy != healthy || (role != "" && m.Role != role) || !strings.Contains(m.Detail, detail) {
			return fmt.Errorf("member %d: %+v", i, m)
		}
		return nil
	}
}

// All holds when every cond holds.
func All(conds ...func(engines.Status) error) func(engines.Status) error {
	return func(st engines.Status) error {
		var errs []error
		for _, c := range conds {
			errs = append(errs, c(st))
		}
		return errors.Join(errs...)
	}
}

// QueryInts returns the single int column of q's rows.
func QueryInts(tb testing.TB, db *sql.DB, q string) []int {
	tb.Helper()
	rows, err := db.Query(q)
	require.NoError(tb, err)
	defer rows.Close()
	var got []int
	for rows.Next() {
		var id int
		require.NoError(tb, rows.Scan(&id))
		got = append(got, id)
	}
	require.NoError(tb, rows.Err())
	return got
}

// LogTails logs the last lines of each member's log file (path gives it)
// when the test failed.
func LogTails(tb testing.TB, c *engines.Cluster, path func(engines.Member) string) {
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		for _, m := range c.Members {
			b, _ := os.ReadFile(path(m))
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			tb.Logf("--- %s %s (tail)\n%s", m.Name, path(m), strings.Join(lines, "\n"))
		}
	})
}

// Unanswered is a launcher whose API server did not answer in time
// whether a process runs (engines.Liveness): an engine's probe must then
// say its members timed out (no evidence), not that they are down.
type Unanswered struct{ engines.Procs }

// Live: unknown, as a pod list that ran out of time.
func (Unanswered) Live(context.Context, string) (bool, error) {
	return false, context.DeadlineExceeded
}

// RequireUnknown: every member of st timed out, and the service's state
// is unknown.
func RequireUnknown(tb testing.TB, st engines.Status) {
	tb.Helper()
	si := lab.ServiceStatus{Writable: st.Writable}
	for _, m := range st.Members {
		require.True(tb, m.TimedOut, "%s: %s", m.Name, m.Detail)
		si.Members = append(si.Members, lab.Member{Name: m.Name, Up: m.Up, Healthy: m.Healthy, TimedOut: m.TimedOut})
	}
	observed, _, _ := lab.Observe(si)
	require.Equal(tb, lab.Unknown, observed)
}
