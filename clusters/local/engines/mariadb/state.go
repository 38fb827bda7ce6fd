package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab/mysqlrepl"
)

// memberState is what a member says of itself.
type memberState struct {
	ReadOnly bool
	GTID     string // gtid_current_pos
	// Replica is false when no replication is configured (SHOW SLAVE
	// STATUS is empty, as on the primary).
	Replica       bool
	IORunning     string // Yes, No, Connecting
	SQLRunning    string // Yes, No
	SecondsBehind sql.NullInt64
	LastIOError   string
	LastSQLError  string
	SlavePos      string // gtid_slave_pos
}

// writable: the primary answers and takes writes.
func writable(s memberState) bool { return !s.ReadOnly }

// replicating: both replication threads run and the lag is known.
func replicating(s memberState) bool {
	return s.Replica && s.IORunning == "Yes" && s.SQLRunning == "Yes" && s.SecondsBehind.Valid
}

// String is the state in a status line.
func (s memberState) String() string {
	if !s.Replica {
		return fmt.Sprintf("read_only=%t gtid=%s", s.ReadOnly, s.GTID)
	}
	behind := "NULL"
	if s.SecondsBehind.Valid {
		behind = fmt.Sprint(s.SecondsBehind.Int64)
	}
	d := fmt.Sprintf("read_only=%t io=%s sql=%s behind=%s gtid=%s", s.ReadOnly, s.IORunning, s.SQLRunning, behind, s.GTID)
	for _, e := range []string{s.LastIOError, s.LastSQLError} {
		if e != "" {
			d += " error=" + e
		}
	}
	return d
}

// query reads member m's state over its unix socket, as the workload
// account (which has SLAVE MONITOR).
func query(ctx context.Context, c *engines.Cluster, pw string, m engines.Member) (memberState, error) {
	var st memberState
	db, err := Open(c, m, pw)
	if err != nil {
		return st, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, StatusWait)
	defer cancel()
	err = db.QueryRowContext(ctx, "SELECT @@read_only, @@gtid_current_pos, @@gtid_slave_pos").Scan(&st.ReadOnly, &st.GTID, &st.SlavePos)
	if err != nil {
		return st, err
	}
	return st, slaveStatus(ctx, db, &st)
}

// slaveStatus fills st from SHOW SLAVE STATUS.
func slaveStatus(ctx context.Context, db *sql.DB, st *memberState) error {
	cols, err := mysqlrepl.ReplicaStatus(ctx, db)
	if err != nil || cols == nil {
		return err
	}
	st.Replica = true
	st.IORunning, st.SQLRunning = cols["Slave_IO_Running"].String, cols["Slave_SQL_Running"].String
	st.LastIOError, st.LastSQLError = cols["Last_IO_Error"].String, cols["Last_SQL_Error"].String
	if v := cols["Seconds_Behind_Master"]; v.Valid {
		_, err := fmt.Sscan(v.String, &st.SecondsBehind.Int64)
		st.SecondsBehind.Valid = err == nil
	}
	return nil
}

// waitMember waits until member i's state satisfies ok.
func (e *Engine) waitMember(ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string, ok func(memberState) bool) error {
	return WaitState(ctx, c, i, timeout, what, func(ctx context.Context) (string, error) {
		return ReadPassword(ctx, c, passwordName(c))
	}, query, ok)
}

// WaitState waits until member i's state, as query reads it with the
// password password gives, satisfies ok; it gives up at once if the
// member's mariadbd ends (e.g. a Galera joiner that found no Primary).
func WaitState[S any](ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string,
	password func(context.Context) (string, error),
	query func(context.Context, *engines.Cluster, string, engines.Member) (S, error), ok func(S) bool) error {
	return WaitRunning(ctx, c, i, timeout, what, func(ctx context.Context) error {
		pw, err := password(ctx)
		if err != nil {
			return err
		}
		st, err := query(ctx, c, pw, c.Members[i])
		if err != nil {
			return err
		}
		if !ok(st) {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
}

// WaitRunning polls cond until it holds, like engines.WaitFor, but gives
// up at once if member i's mariadbd ends.
func WaitRunning(ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string, cond func(context.Context) error) error {
	m := c.Members[i]
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := engines.WaitFor(ctx, timeout, 250*time.Millisecond, m.Name+" "+what, func(ctx context.Context) error {
		if !Running(ctx, c, m) {
			err := fmt.Errorf("mariadbd of %s is not running (see %s)", m.Name, ErrLog(m))
			cancel(err)
			return err
		}
		return cond(ctx)
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", m.Name, what, cause)
	}
	return err
}

// Status samples every member over its socket. Writable: the primary
// (member 0) takes writes and is in the serving component (serving);
// replicas never take writes.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	s := engines.Status{Engine: "mariadb-async", Members: make([]engines.MemberStatus, len(c.Members))}
	linked := make([]bool, len(c.Members))
	pw, pwErr := ReadPassword(ctx, c, passwordName(c))
	done := make(chan struct{}, len(c.Members))
	for i, m := range c.Members {
		go func() {
			defer func() { done <- struct{}{} }()
			s.Members[i], linked[i] = memberStatus(ctx, c, i, m, pw, pwErr)
		}()
	}
	for range c.Members {
		<-done
	}
	s.Writable = serving(s.Members, linked)
	return s, nil
}

// serving: the primary takes writes and its side of any partition holds
// at least as many running members as the other (a tie goes to it, member
// 0), as the spec's serving component. A replica that runs but is not
// linked to the primary (IO thread not connected) is on the other side:
// an isolated primary still answers on its socket, but the clients of the
// serving component cannot reach it.
func serving(ms []engines.MemberStatus, linked []bool) bool {
	if len(ms) == 0 || !ms[0].Healthy {
		return false
	}
	with, without := 1, 0
	for i := 1; i < len(ms); i++ {
		switch {
		case linked[i]:
			with++
		case ms[i].Up:
			without++
		}
	}
	return with >= without
}

// memberStatus probes member i; linked: a replica connected to the primary.
func memberStatus(ctx context.Context, c *engines.Cluster, i int, m engines.Member, pw string, pwErr error) (engines.MemberStatus, bool) {
	ms := engines.MemberStatus{Index: i, Name: m.Name, Role: "replica"}
	if i == 0 {
		ms.Role = "primary"
	}
	if !Running(ctx, c, m) {
		ms.Detail = "not running"
		return ms, false
	}
	if pwErr != nil {
		ms.Detail = pwErr.Error()
		return ms, false
	}
	st, err := query(ctx, c, pw, m)
	if err != nil {
		ms.Detail = "not answering: " + err.Error()
		ms.TimedOut = TimedOut(err)
		return ms, false
	}
	ms.Up, ms.Detail = true, st.String()
	if i == 0 {
		ms.Healthy = writable(st)
	} else {
		ms.Healthy = replicating(st)
	}
	return ms, st.IORunning == "Yes"
}

// domainSeqno is the sequence number of domain 0 in a GTID position
// ("0-1-42,1-2-7"), -1 when absent: the lab writes in domain 0 only.
func domainSeqno(pos string) int64 {
	for _, g := range strings.Split(pos, ",") {
		var d, srv uint32
		var seq int64
		if _, err := fmt.Sscanf(strings.TrimSpace(g), "%d-%d-%d", &d, &srv, &seq); err == nil && d == 0 {
			return seq
		}
	}
	return -1
}
