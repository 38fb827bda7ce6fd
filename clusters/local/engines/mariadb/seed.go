package mariadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// gtidRE finds the dump's position (--gtid with --master-data=2 or
// --dump-slave=2 writes it as a comment: -- SET GLOBAL gtid_slave_pos='0-1-42';).
var gtidRE = regexp.MustCompile(`gtid_slave_pos='([0-9,-]*)'`)

// seed copies the workload database from member src into the running,
// freshly initialised replica dst and makes dst replicate the primary from
// the copy's GTID position.
func (e *Engine) seed(ctx context.Context, c *engines.Cluster, src, dst int, pw string) error {
	from, to := c.Members[src], c.Members[dst]
	pos, err := copyData(ctx, from, to, src > 0)
	if err != nil {
		return err
	}
	e.log.Info("replica seeded", "member", to.Name, "from", from.Name, "gtid", pos)
	if err := follow(ctx, c, dst, pos, pw); err != nil {
		return err
	}
	return markSeeded(to)
}

// copyData dumps the workload database of from (one consistent snapshot
// and its position in the primary's GTID history) and loads it into to,
// outside to's binary log. From a replica the position is what it applied
// (--dump-slave pauses its SQL thread for the dump): its own binary log
// lacks what it got by a seed, so --master-data would understate it.
func copyData(ctx context.Context, from, to engines.Member, fromReplica bool) (string, error) {
	file := filepath.Join(to.DataDir, "seed.sql")
	defer os.Remove(file)
	position := "--master-data=2"
	if fromReplica {
		position = "--dump-slave=2"
	}
	out, err := exec.CommandContext(ctx, "mariadb-dump", "--no-defaults", "--protocol=socket", "--socket="+SocketPath(from),
		"--user=root", "--single-transaction", "--gtid", position, "--databases", Database,
		"--result-file="+file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb-dump of %s: %v: %s", from.Name, err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	mm := gtidRE.FindSubmatch(b)
	if mm == nil {
		return "", fmt.Errorf("mariadb-dump of %s: no GTID position in the dump", from.Name)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	load := exec.CommandContext(ctx, "mariadb", rootArgs(to, "--init-command=SET sql_log_bin=0")...)
	load.Stdin = f
	if out, err := load.CombinedOutput(); err != nil {
		return "", fmt.Errorf("loading the dump of %s into %s: %v: %s", from.Name, to.Name, err, out)
	}
	return string(mm[1]), nil
}

// follow makes member i a replica of member 0 from GTID position pos.
func follow(ctx context.Context, c *engines.Cluster, i int, pos, pw string) error {
	p := c.Members[0]
	_, err := RootSQL(ctx, c, c.Members[i], fmt.Sprintf(`STOP SLAVE; SET GLOBAL gtid_slave_pos='%s';
CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s',
  MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=%d;
START SLAVE;`, pos, p.Addr, ClientPort, replUser, pw, connectRetry))
	return err
}

func markSeeded(m engines.Member) error {
	return os.WriteFile(seededPath(m), []byte("complete\n"), 0o644)
}

// bootPrimary starts member 0, which does not run. A primary whose data
// is gone (destroyed) while replicas hold data is re-seeded from the most
// advanced of them; a fresh cluster's primary is initialised empty.
func (e *Engine) bootPrimary(ctx context.Context, c *engines.Cluster, pw string) error {
	m := c.Members[0]
	if seeded(m) {
		return e.boot(ctx, c, 0, pw)
	}
	if err := wipeData(ctx, m); err != nil {
		return err
	}
	if !e.replicaHasData(c) {
		if err := e.boot(ctx, c, 0, pw); err != nil {
			return err
		}
		return markSeeded(m)
	}
	if err := e.bootSeededReplicas(ctx, c, pw); err != nil {
		return err
	}
	src := e.mostAdvanced(ctx, c, pw)
	if src < 0 {
		return fmt.Errorf("mariadb %s: the primary's data is gone and no replica with data answers", c.Service)
	}
	return e.restorePrimary(ctx, c, src, pw)
}

// bootSeededReplicas starts the replicas that hold data and do not run.
func (e *Engine) bootSeededReplicas(ctx context.Context, c *engines.Cluster, pw string) error {
	for i := 1; i < len(c.Members); i++ {
		if m := c.Members[i]; seeded(m) && !Running(ctx, c, m) {
			if err := e.boot(ctx, c, i, pw); err != nil {
				return err
			}
		}
	}
	return nil
}

// mostAdvanced is the running replica that applied the most of the
// primary's history (ties: the lowest member), -1 if none answers.
func (e *Engine) mostAdvanced(ctx context.Context, c *engines.Cluster, pw string) int {
	best, bestSeq := -1, int64(-2)
	for i := 1; i < len(c.Members); i++ {
		m := c.Members[i]
		if !seeded(m) || !Running(ctx, c, m) {
			continue
		}
		st, err := query(ctx, c, pw, m)
		if err != nil {
			e.log.Warn("replica does not answer", "member", m.Name, "err", err)
			continue
		}
		if s := domainSeqno(st.SlavePos); s > bestSeq {
			best, bestSeq = i, s
		}
	}
	return best
}

// restorePrimary re-seeds the wiped primary from replica src: it runs
// read-only until the copy is in and its binary log continues src's GTID
// history, so that replicas at that position resume from it. Replicas at
// another position (behind, or ahead by what src had not applied when it
// was copied) are re-seeded from the restored primary.
func (e *Engine) restorePrimary(ctx context.Context, c *engines.Cluster, src int, pw string) error {
	m := c.Members[0]
	e.log.Warn("the primary's data is gone: re-seeding it from a replica; what that replica had not received is lost",
		"primary", m.Name, "from", c.Members[src].Name)
	if err := e.boot(ctx, c, 0, pw, "--read-only=ON"); err != nil {
		return err
	}
	pos, err := copyData(ctx, c.Members[src], m, true)
	if err != nil {
		return err
	}
	if _, err := RootSQL(ctx, c, m, fmt.Sprintf("RESET MASTER; SET GLOBAL gtid_binlog_state='%s'; SET GLOBAL read_only=OFF;", pos)); err != nil {
		return err
	}
	if err := markSeeded(m); err != nil {
		return err
	}
	return e.reattachReplicas(ctx, c, pos, pw)
}

// reattachReplicas restarts replication on the replicas at pos and
// re-seeds the others. The restart clears what a replica met while it
// reconnected to the primary during the restore (an empty binary log:
// error 1236, which stops its IO thread for good).
func (e *Engine) reattachReplicas(ctx context.Context, c *engines.Cluster, pos, pw string) error {
	var errs []error
	for i := 1; i < len(c.Members); i++ {
		m := c.Members[i]
		if Running(ctx, c, m) {
			if st, err := query(ctx, c, pw, m); err == nil && domainSeqno(st.SlavePos) == domainSeqno(pos) {
				_, err := RootSQL(ctx, c, m, "STOP SLAVE; START SLAVE;")
				errs = append(errs, err)
				continue
			}
		}
		e.log.Warn("replica not at the restored primary's position: re-seeding it", "member", m.Name, "gtid", pos)
		if err := StopMember(ctx, c, i); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(seededPath(m)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, e.startReplica(ctx, c, i, pw))
	}
	return errors.Join(errs...)
}
