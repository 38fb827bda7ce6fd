package galera

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Position is a member's replication position (Galera GTID).
type Position struct {
	UUID  string
	Seqno int64
}

func (p Position) String() string { return p.UUID + ":" + strconv.FormatInt(p.Seqno, 10) }

func grastatePath(m engines.Member) string { return filepath.Join(mariadb.DataDir(m), "grastate.dat") }

// grastate reads the saved state, on the member's node: seqno is -1 after a crash.
func grastate(ctx context.Context, c *engines.Cluster, m engines.Member) (Position, bool, error) {
	b, err := c.FS().ReadFile(ctx, m, grastatePath(m))
	if err != nil {
		return Position{Seqno: -1}, false, err
	}
	p := Position{Seqno: -1}
	safe := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "uuid":
			p.UUID = v
		case "seqno":
			p.Seqno, _ = strconv.ParseInt(v, 10, 64)
		case "safe_to_bootstrap":
			safe = v == "1"
		}
	}
	return p, safe, sc.Err()
}

var recoveredRE = regexp.MustCompile(`WSREP: Recovered position: ([0-9a-f-]{36}):(-?\d+)`)

// position is a stopped member's last committed position: from
// grastate.dat after a clean shutdown, else by mariadbd --wsrep-recover.
func (e *Engine) position(ctx context.Context, c *engines.Cluster, m engines.Member) (Position, error) {
	fresh, err := mariadb.Fresh(ctx, c, m)
	if err != nil {
		return Position{Seqno: -1}, err
	}
	if fresh {
		return Position{Seqno: -1}, nil
	}
	if p, _, err := grastate(ctx, c, m); err == nil && p.Seqno >= 0 {
		return p, nil
	}
	// mariadbd appends to this log: the position is the last one in it
	logf := filepath.Join(m.LogDir, "wsrep-recover.log")
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := c.RunOnce(rctx, m, proc.Spec{Name: m.Name + ".wsrep-recover", Path: mariadb.Mariadbd, User: mariadb.RunUser, NetNS: m.NetNS,
		Dir: m.DataDir, Args: []string{"--defaults-file=" + mariadb.CnfPath(m), "--wsrep-recover", "--log-error=" + logf}})
	logb, _ := c.FS().ReadFile(ctx, m, logf)
	if err != nil {
		return Position{Seqno: -1}, fmt.Errorf("wsrep-recover %s: %v: %s %s", m.Name, err, out, logb)
	}
	all := recoveredRE.FindAllSubmatch(logb, -1)
	if all == nil {
		return Position{Seqno: -1}, fmt.Errorf("wsrep-recover %s: no position in log: %s", m.Name, logb)
	}
	mm := all[len(all)-1]
	seq, _ := strconv.ParseInt(string(mm[2]), 10, 64)
	p := Position{UUID: string(mm[1]), Seqno: seq}
	e.log.Info("recovered position", "member", m.Name, "position", p.String(), "took", time.Since(t0).Round(time.Millisecond))
	return p, nil
}

// Recover brings back a cluster in which no Primary component remains (all
// members stopped or crashed, or the survivors non-Primary): it finds the
// most advanced member (running ones by wsrep_last_committed, stopped ones
// by grastate.dat or --wsrep-recover), bootstraps a new Primary component
// from it (pc.bootstrap=YES if it runs, --wsrep-new-cluster if not), then
// starts the others, which catch up by IST or SST. If a Primary component
// exists it only starts the missing members.
func (e *Engine) Recover(ctx context.Context, c *engines.Cluster) error {
	t0 := time.Now()
	for _, m := range c.Members {
		if err := prepare(ctx, c, m); err != nil {
			return err
		}
	}
	pw, err := e.ensurePassword(ctx, c)
	if err != nil {
		return err
	}
	if _, ok := e.primaryMember(ctx, c, 0); ok {
		return e.startMissing(ctx, c)
	}
	best, bestPos, bestRunning := -1, Position{Seqno: -1}, false
	for i, m := range c.Members {
		var p Position
		running := mariadb.Running(ctx, c, m)
		if running {
			st, err := query(ctx, c, pw, m)
			if err != nil {
				e.log.Warn("running member does not answer; skipped", "member", m.Name, "err", err)
				continue
			}
			p = Position{UUID: st.UUID, Seqno: st.LastCommitted}
		} else if p, err = e.position(ctx, c, m); err != nil {
			e.log.Warn("no position", "member", m.Name, "err", err)
			continue
		}
		e.log.Info("member position", "member", m.Name, "running", running, "position", p.String())
		// Ties go to a running member (no restart needed), then the lowest index.
		if p.Seqno > bestPos.Seqno || (p.Seqno == bestPos.Seqno && running && !bestRunning) {
			best, bestPos, bestRunning = i, p, running
		}
	}
	if best < 0 {
		allFresh := true
		for _, m := range c.Members {
			fresh, err := mariadb.Fresh(ctx, c, m)
			if err != nil {
				return err
			}
			allFresh = allFresh && fresh && !mariadb.Running(ctx, c, m)
		}
		if !allFresh {
			return fmt.Errorf("galera %s: no member has a recoverable position", c.Service)
		}
		if err := e.bootstrapFresh(ctx, c); err != nil {
			return err
		}
		return e.startMissing(ctx, c)
	}
	m := c.Members[best]
	e.log.Info("bootstrapping new Primary component", "member", m.Name, "position", bestPos.String(), "running", bestRunning)
	if bestRunning {
		if _, err := mariadb.RootSQL(ctx, c, m, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"); err != nil {
			return err
		}
	} else {
		if err := markSafeToBootstrap(ctx, c, m); err != nil {
			return err
		}
		if err := e.startProc(ctx, c, m, "--wsrep-new-cluster", "--wsrep_start_position="+bestPos.String()); err != nil {
			return err
		}
	}
	if err := e.waitMember(ctx, c, best, mariadb.StartTimeout, "Primary and Synced", nodeState.synced); err != nil {
		return err
	}
	if err := e.startMissing(ctx, c); err != nil {
		return err
	}
	e.log.Info("galera cluster recovered", "service", c.Service, "from", m.Name, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// markSafeToBootstrap sets safe_to_bootstrap: 1 in grastate.dat, which
// mariadbd otherwise refuses to bootstrap from after a crash.
func markSafeToBootstrap(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	fs := c.FS()
	b, err := fs.ReadFile(ctx, m, grastatePath(m))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`(?m)^safe_to_bootstrap:.*$`)
	return fs.WriteFile(ctx, m, grastatePath(m), re.ReplaceAll(b, []byte("safe_to_bootstrap: 1")), 0o640)
}
