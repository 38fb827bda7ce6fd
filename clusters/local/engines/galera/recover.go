package galera

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
)

// Position is a member's replication position (Galera GTID).
type Position struct {
	UUID  string
	Seqno int64
}

func (p Position) String() string { return p.UUID + ":" + strconv.FormatInt(p.Seqno, 10) }

// grastate reads the saved state: seqno is -1 after a crash.
func grastate(m engines.Member) (Position, bool, error) {
	f, err := os.Open(filepath.Join(mariadb.DataDir(m), "grastate.dat"))
	if err != nil {
		return Position{Seqno: -1}, false, err
	}
	defer f.Close()
	p := Position{Seqno: -1}
	safe := false
	sc := bufio.NewScanner(f)
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
func (e *Engine) position(ctx context.Context, m engines.Member) (Position, error) {
	if mariadb.Fresh(m) {
		return Position{Seqno: -1}, nil
	}
	if p, _, err := grastate(m); err == nil && p.Seqno >= 0 {
		return p, nil
	}
	logf := filepath.Join(m.DataDir, "wsrep-recover.log")
	_ = os.Remove(logf)
	argv := []string{"setpriv", "--reuid=" + mariadb.RunUser, "--regid=" + mariadb.RunUser, "--init-groups", "--",
		mariadb.Mariadbd, "--defaults-file=" + mariadb.CnfPath(m), "--wsrep-recover", "--log-error=" + logf}
	if m.NetNS != "" {
		argv = append([]string{"ip", "netns", "exec", m.NetNS}, argv...)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := engines.OneShot(exec.CommandContext(rctx, argv[0], argv[1:]...), m)
	logb, _ := os.ReadFile(logf)
	if err != nil {
		return Position{Seqno: -1}, fmt.Errorf("wsrep-recover %s: %v: %s %s", m.Name, err, out, logb)
	}
	mm := recoveredRE.FindSubmatch(logb)
	if mm == nil {
		return Position{Seqno: -1}, fmt.Errorf("wsrep-recover %s: no position in log: %s", m.Name, logb)
	}
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
	pw, err := ensurePassword(c)
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
			st, err := query(ctx, pw, m)
			if err != nil {
				e.log.Warn("running member does not answer; skipped", "member", m.Name, "err", err)
				continue
			}
			p = Position{UUID: st.UUID, Seqno: st.LastCommitted}
		} else if p, err = e.position(ctx, m); err != nil {
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
			allFresh = allFresh && mariadb.Fresh(m) && !mariadb.Running(ctx, c, m)
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
		if _, err := mariadb.RootSQL(ctx, m, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"); err != nil {
			return err
		}
	} else {
		if err := markSafeToBootstrap(m); err != nil {
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
func markSafeToBootstrap(m engines.Member) error {
	p := filepath.Join(mariadb.DataDir(m), "grastate.dat")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	re := regexp.MustCompile(`(?m)^safe_to_bootstrap:.*$`)
	return os.WriteFile(p, re.ReplaceAll(b, []byte("safe_to_bootstrap: 1")), 0o640)
}
