package galera

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
)

// nodeState is what SHOW GLOBAL STATUS says of a member's wsrep state.
type nodeState struct {
	ClusterStatus string // Primary, non-Primary, Disconnected
	Size          int
	State         string // Synced, Donor/Desynced, Joining, Joined, ...
	Ready         bool
	LastCommitted int64
	UUID          string
}

func (s nodeState) primary() bool { return s.ClusterStatus == "Primary" }

func (s nodeState) synced() bool { return s.primary() && s.Ready && s.State == "Synced" }

// query reads a member's wsrep status over its unix socket, with short
// timeouts so that Status can be sampled twice a second.
func query(ctx context.Context, c *engines.Cluster, pw string, m engines.Member) (nodeState, error) {
	var st nodeState
	db, err := mariadb.Open(c, m, pw)
	if err != nil {
		return st, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, mariadb.StatusWait)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SHOW GLOBAL STATUS WHERE Variable_name IN
		('wsrep_cluster_status','wsrep_cluster_size','wsrep_local_state_comment','wsrep_ready','wsrep_last_committed','wsrep_cluster_state_uuid')`)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return st, err
		}
		switch k {
		case "wsrep_cluster_status":
			st.ClusterStatus = v
		case "wsrep_cluster_size":
			st.Size, _ = strconv.Atoi(v)
		case "wsrep_local_state_comment":
			st.State = v
		case "wsrep_ready":
			st.Ready = v == "ON"
		case "wsrep_last_committed":
			st.LastCommitted, _ = strconv.ParseInt(v, 10, 64)
		case "wsrep_cluster_state_uuid":
			st.UUID = v
		}
	}
	return st, rows.Err()
}

// Status samples every member over its socket.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	s := engines.Status{Engine: "galera", Members: make([]engines.MemberStatus, len(c.Members))}
	pw, pwErr := e.readPassword(ctx, c)
	type res struct {
		i  int
		ms engines.MemberStatus
	}
	ch := make(chan res, len(c.Members))
	for i, m := range c.Members {
		go func() {
			ms := engines.MemberStatus{Index: i, Name: m.Name}
			if c.NotRunning(ctx, &ms, mariadb.ProcName(m)) {
				ch <- res{i, ms}
				return
			}
			switch st, err := query(ctx, c, pw, m); {
			case pwErr != nil:
				ms.Detail = pwErr.Error()
			case err != nil:
				ms.Detail = "not answering: " + err.Error()
				ms.TimedOut = mariadb.TimedOut(err)
			default:
				ms.Up = true
				ms.Role = role(st)
				ms.Healthy = st.synced()
				ms.Detail = fmt.Sprintf("component=%s size=%d state=%s ready=%t seqno=%d", st.ClusterStatus, st.Size, st.State, st.Ready, st.LastCommitted)
			}
			ch <- res{i, ms}
		}()
	}
	for range c.Members {
		r := <-ch
		s.Members[r.i] = r.ms
		s.Writable = s.Writable || r.ms.Healthy
	}
	return s, nil
}

func role(st nodeState) string {
	if !st.primary() {
		return "non-primary"
	}
	switch {
	case st.State == "Synced":
		return "synced"
	case strings.HasPrefix(st.State, "Donor"):
		return "donor"
	case strings.HasPrefix(st.State, "Join"), strings.HasPrefix(st.State, "Waiting"):
		return "joiner"
	}
	return strings.ToLower(st.State)
}
