package mariadb

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Engine runs MariaDB asynchronous replication, the lab's stand-in for
// MySQL 5.7 async replication: member 0 is the primary (read_only=OFF,
// binary log), every other member a replica of it by GTID
// (MASTER_USE_GTID=slave_pos, read_only=ON). Nothing fails over: while
// the primary is down or cut off the replicas answer reads and refuse
// writes, and Status says the service is not writable.
//
// Recovery, as an operator would do it:
//   - a restarted primary keeps its role (its config says read_only=OFF);
//   - a restarted replica resumes from its GTID position (crash-safe in
//     mysql.gtid_slave_pos; its connection settings are in the datadir);
//   - a wiped replica is re-seeded from the primary (while that is down,
//     from the most advanced replica): mariadb-dump --single-transaction
//     --gtid of the workload database (a dump works with what Debian's
//     mariadb-client has; mariabackup is another package), then
//     replication of the primary from the dump's GTID position;
//   - a wiped primary is re-seeded the same way from the most advanced
//     replica and stays member 0, continuing that replica's GTID history
//     (what the lost primary had not shipped is lost, as analyze's
//     acknowledgedLossPossible says); replicas at another position are
//     re-seeded. Until then the service stays read-only; with every
//     member's data gone it starts empty, as a new cluster.
//
// Accounts are created on each member with sql_log_bin=0: they are
// per-server setup, not replicated data, so a re-seeded member gets them
// the same way as a fresh one.
type Engine struct {
	log *slog.Logger
}

// New returns an Engine logging to log.
func New(log *slog.Logger) *Engine { return &Engine{log: log} }

// replUser is the account replicas connect to the primary with.
const replUser = "repl"

const (
	// connectRetry (s): how often a replica retries a lost primary, so that
	// it catches up soon after the primary is back (default 60 s).
	connectRetry = 1
	// catchUpTimeout bounds a replica's wait to replicate after a start.
	catchUpTimeout = 3 * time.Minute
)

// Install installs the pinned packages.
func (e *Engine) Install(ctx context.Context) error {
	return install.Apt(ctx, e.log, Packages...)
}

// Version reports the MariaDB server version.
func (e *Engine) Version(ctx context.Context) (string, error) { return Version(ctx) }

// Endpoints are the members' client addresses.
func (e *Engine) Endpoints(c *engines.Cluster) []string { return Endpoints(c) }

// DSN returns a go-sql-driver/mysql DSN for the workload account on member
// i over TCP. Only member 0 takes writes; replicas refuse them (error
// 1290, read-only) and may lag it.
func (e *Engine) DSN(c *engines.Cluster, i int) (string, error) {
	pw, err := ReadPassword(context.Background(), c, passwordName(c))
	if err != nil {
		return "", err
	}
	return DSN(c, i, pw), nil
}

// passwordName names the workload account's password file (PasswordFile).
func passwordName(c *engines.Cluster) string { return c.Service + ".mariadb-password" }

// seededPath marks a replica whose seeding finished; it is in the member
// directory, so a wipe removes it with the data.
func seededPath(m engines.Member) string { return filepath.Join(m.DataDir, "seeded") }

func seeded(m engines.Member) bool {
	_, err := os.Stat(seededPath(m))
	return err == nil
}

// asyncConfig is member i's config: server_id i+1 (unique), a binary log
// on every member (log_slave_updates, so that a replica can seed others or
// a lost primary), read_only on replicas.
func asyncConfig(m engines.Member, i int) string {
	ro := "OFF"
	if i > 0 {
		ro = "ON"
	}
	// sync_binlog=1: a killed primary must not lose from its binary log
	// what it acknowledged, or replicas would never receive it.
	// slave_net_timeout 5 s (a heartbeat every 2.5 s): a replica notices
	// a primary cut off without FIN in seconds, not a minute.
	return Config(m, fmt.Sprintf(`server_id = %d
log_bin = mariadb-bin
log_slave_updates = ON
sync_binlog = 1
gtid_strict_mode = ON
relay_log = relay-bin
read_only = %s
slave_net_timeout = 5
`, i+1, ro))
}

// ensureAccounts creates the workload account (which may also watch
// replication, for status) and the replication account on member m,
// outside the binary log.
func ensureAccounts(ctx context.Context, c *engines.Cluster, m engines.Member, pw string) error {
	_, err := RootSQL(ctx, c, m, "SET sql_log_bin=0;"+WorkloadSQL(pw, "SLAVE MONITOR")+
		AccountSQL(replUser, pw, "REPLICATION SLAVE ON *.*"))
	return err
}

// Start starts every member and returns once the primary is writable and
// every replica replicates. It is idempotent.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	t0 := time.Now()
	pw, err := e.prepareAll(ctx, c)
	if err != nil {
		return err
	}
	// A wiped primary is re-seeded from a replica, which must run first.
	if err := e.bootSeededReplicas(ctx, c, pw); err != nil {
		return err
	}
	if err := e.startPrimary(ctx, c, pw); err != nil {
		return err
	}
	for i := 1; i < len(c.Members); i++ {
		if err := e.startReplica(ctx, c, i, pw); err != nil {
			return err
		}
		if err := e.waitMember(ctx, c, i, catchUpTimeout, "replicating", replicating); err != nil {
			return err
		}
	}
	e.log.Info("mariadb async replication up", "service", c.Service, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

func (e *Engine) prepareAll(ctx context.Context, c *engines.Cluster) (string, error) {
	for i, m := range c.Members {
		if err := Prepare(ctx, c, m, asyncConfig(m, i)); err != nil {
			return "", err
		}
	}
	return EnsurePassword(ctx, c, passwordName(c))
}

// StartMember (re)starts member i: the primary keeps its role (re-seeded
// from the most advanced replica if its data is gone), a replica resumes
// replication (re-seeded from the primary if its data is gone). It
// returns once the member answers and, for a replica whose primary runs,
// replicates.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	if err := Prepare(ctx, c, m, asyncConfig(m, i)); err != nil {
		return err
	}
	pw, err := EnsurePassword(ctx, c, passwordName(c))
	if err != nil {
		return err
	}
	if i == 0 {
		return e.startPrimary(ctx, c, pw)
	}
	if err := e.startReplica(ctx, c, i, pw); err != nil {
		return err
	}
	if !Running(ctx, c, c.Members[0]) {
		return nil // no primary to replicate from: it resumes when that is back
	}
	return e.waitMember(ctx, c, i, catchUpTimeout, "replicating", replicating)
}

// startPrimary starts member 0 unless it runs and waits until it takes
// writes.
func (e *Engine) startPrimary(ctx context.Context, c *engines.Cluster, pw string) error {
	m := c.Members[0]
	if !Running(ctx, c, m) {
		if err := e.bootPrimary(ctx, c, pw); err != nil {
			return err
		}
	}
	return e.waitMember(ctx, c, 0, StartTimeout, "writable", writable)
}

func (e *Engine) replicaHasData(c *engines.Cluster) bool {
	for _, m := range c.Members[1:] {
		if seeded(m) {
			return true
		}
	}
	return false
}

// boot starts member i's mariadbd with extra arguments (initialising its
// datadir if fresh) and makes sure its accounts exist.
func (e *Engine) boot(ctx context.Context, c *engines.Cluster, i int, pw string, extra ...string) error {
	m := c.Members[i]
	fresh, err := Fresh(ctx, c, m)
	if err != nil {
		return err
	}
	if fresh {
		if err := InstallDB(ctx, c, m); err != nil {
			return err
		}
	}
	if err := StartProc(ctx, e.log, c, m, extra...); err != nil {
		return err
	}
	// The accounts are created as root as soon as the server answers.
	return WaitRunning(ctx, c, i, StartTimeout, "creating accounts", func(ctx context.Context) error {
		return ensureAccounts(ctx, c, m, pw)
	})
}

// startReplica starts replica i unless it runs. One that holds no
// complete seed (fresh, wiped, or interrupted while seeding) is wiped and
// seeded from the primary, or while that is down from the most advanced
// replica (it then follows the primary from that copy's position once the
// primary is back); otherwise its replication resumes by itself from its
// GTID position.
func (e *Engine) startReplica(ctx context.Context, c *engines.Cluster, i int, pw string) error {
	m := c.Members[i]
	if Running(ctx, c, m) {
		return nil
	}
	if seeded(m) {
		return e.boot(ctx, c, i, pw)
	}
	src := 0
	if !Running(ctx, c, c.Members[0]) {
		if src = e.mostAdvanced(ctx, c, pw); src < 0 {
			return fmt.Errorf("mariadb %s: no member with data runs to seed %s from", c.Service, m.Name)
		}
	}
	if err := wipeData(ctx, m); err != nil {
		return err
	}
	if err := e.boot(ctx, c, i, pw); err != nil {
		return err
	}
	return e.seed(ctx, c, src, i, pw)
}

// wipeData empties a member's datadir (a half-seeded one is not trusted).
func wipeData(ctx context.Context, m engines.Member) error {
	if err := os.RemoveAll(DataDir(m)); err != nil {
		return err
	}
	if err := os.MkdirAll(DataDir(m), 0o755); err != nil {
		return err
	}
	return chown(ctx, DataDir(m))
}

// Stop stops the replicas, then the primary.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopLastFirst(c, func(i int) error { return StopMember(ctx, c, i) })
}

// StopMember shuts member i down cleanly.
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	return StopMember(ctx, c, i)
}
