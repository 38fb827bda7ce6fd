package galera

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
)

// ensureUser creates (or re-keys) the workload account on member m, which
// must be in the Primary component; Galera replicates it.
func (e *Engine) ensureUser(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	pw, err := e.ensurePassword(ctx, c)
	if err != nil {
		return err
	}
	_, err = mariadb.RootSQL(ctx, c, m, mariadb.WorkloadSQL(pw))
	return err
}

// waitMember waits until member i's state satisfies ok; it gives up at
// once if the member's mariadbd ends (e.g. a joiner that found no Primary).
func (e *Engine) waitMember(ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string, ok func(nodeState) bool) error {
	return mariadb.WaitState(ctx, c, i, timeout, what, func(ctx context.Context) (string, error) {
		return e.readPassword(ctx, c)
	}, query, ok)
}

// Start starts every member and returns once all are Synced in one Primary
// component of full size. A cluster with no member running is bootstrapped
// from member 0 when it holds no data yet, else recovered (Recover). It is
// idempotent.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	t0 := time.Now()
	for _, m := range c.Members {
		if err := prepare(ctx, c, m); err != nil {
			return err
		}
	}
	if _, err := e.ensurePassword(ctx, c); err != nil {
		return err
	}
	running := false
	allFresh := true
	for _, m := range c.Members {
		running = running || mariadb.Running(ctx, c, m)
		fresh, err := mariadb.Fresh(ctx, c, m)
		if err != nil {
			return err
		}
		allFresh = allFresh && fresh
	}
	switch {
	case !running && allFresh:
		if err := e.bootstrapFresh(ctx, c); err != nil {
			return err
		}
	case !running:
		return e.Recover(ctx, c)
	default:
		if _, ok := e.primaryMember(ctx, c, 15*time.Second); !ok {
			return fmt.Errorf("galera %s: members run but none is in a Primary component; use Recover", c.Service)
		}
	}
	if err := e.startMissing(ctx, c); err != nil {
		return err
	}
	e.log.Info("galera cluster up", "service", c.Service, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// bootstrapFresh initialises member 0's datadir and starts a new cluster on it.
func (e *Engine) bootstrapFresh(ctx context.Context, c *engines.Cluster) error {
	m := c.Members[0]
	if err := mariadb.InstallDB(ctx, c, m); err != nil {
		return err
	}
	if err := e.startProc(ctx, c, m, "--wsrep-new-cluster"); err != nil {
		return err
	}
	err := mariadb.WaitRunning(ctx, c, 0, mariadb.StartTimeout, "creating user", func(ctx context.Context) error {
		return e.ensureUser(ctx, c, m)
	})
	if err != nil {
		return err
	}
	return e.waitMember(ctx, c, 0, mariadb.StartTimeout, "Primary and Synced", nodeState.synced)
}

// primaryMember waits up to d for a running member in a Primary component
// (any state: a Primary with only a donor left still must not be re-bootstrapped).
func (e *Engine) primaryMember(ctx context.Context, c *engines.Cluster, d time.Duration) (int, bool) {
	pw, err := e.readPassword(ctx, c)
	if err != nil {
		return -1, false
	}
	found := -1
	// d is at least a second, so that a zero d still checks every member.
	_ = engines.WaitFor(ctx, max(d, time.Second), 250*time.Millisecond, "primary component", func(ctx context.Context) error {
		for i, m := range c.Members {
			if !mariadb.Running(ctx, c, m) {
				continue
			}
			if st, err := query(ctx, c, pw, m); err == nil && st.primary() {
				found = i
				return nil
			}
		}
		return errors.New("none")
	})
	return found, found >= 0
}

// startMissing starts every member that does not run, all at once (a
// joiner that finds the donor busy retries by itself), and waits for all to
// be Synced in a Primary component of full size.
func (e *Engine) startMissing(ctx context.Context, c *engines.Cluster) error {
	for i := range c.Members {
		if err := e.launch(ctx, c, i); err != nil {
			return err
		}
	}
	n := len(c.Members)
	for i := range c.Members {
		err := e.waitMember(ctx, c, i, syncTimeout, fmt.Sprintf("Synced in Primary of size %d", n), func(s nodeState) bool {
			return s.synced() && s.Size == n
		})
		if err != nil {
			return err
		}
	}
	// Re-key the account in case the password file was recreated.
	return e.ensureUser(ctx, c, c.Members[0])
}

// StartMember (re)starts member i, which joins the Primary component by IST
// or, when its data is gone or too old, SST; it returns once the member is
// Synced. A crashed member's position is recovered first (as the Debian
// service does with galera_recovery) so that IST can be used.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	if err := e.launch(ctx, c, i); err != nil {
		return err
	}
	return e.waitMember(ctx, c, i, syncTimeout, "Synced", nodeState.synced)
}

// launch starts member i's mariadbd as a joiner unless it runs.
func (e *Engine) launch(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	if err := prepare(ctx, c, m); err != nil {
		return err
	}
	if !mariadb.Running(ctx, c, m) {
		var extra []string
		fresh, err := mariadb.Fresh(ctx, c, m)
		if err != nil {
			return err
		}
		if !fresh {
			if pos, err := e.position(ctx, c, m); err != nil {
				e.log.Warn("position recovery failed; the member will need SST", "member", m.Name, "err", err)
			} else if pos.Seqno >= 0 {
				extra = append(extra, "--wsrep_start_position="+pos.String())
			}
		}
		return e.startProc(ctx, c, m, extra...)
	}
	return nil
}

// StopMember shuts member i down cleanly (SIGTERM, then SIGKILL after a grace).
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	return mariadb.StopMember(ctx, c, i)
}

// Stop stops all members, the last one last, so that it is marked safe to
// bootstrap.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopLastFirst(c, func(i int) error { return e.StopMember(ctx, c, i) })
}
