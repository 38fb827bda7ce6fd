// Package mariadb runs MariaDB 10.11 servers as lab engines. It holds what
// every MariaDB engine shares (the Debian packages, the member's
// directories owned by user mysql, its config's common part, the workload
// account, DSNs, starting and stopping mariadbd) and the asynchronous
// replication engine (Engine: a primary, member 0, and GTID replicas with
// no automatic failover), which stands for MySQL 5.7 async replication.
// The Galera engine (package galera) builds on the shared part.
//
// Control traffic goes over each member's unix socket, so it works
// whatever the lab's routing; workloads use TCP on Member.Addr:3306.
package mariadb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

// ClientPort is the port every member binds on its Member.Addr.
const ClientPort = 3306

// User and Database are the account and schema created for workloads. The
// account may connect from the lab network 198.18.0.0/15, from loopback
// 127.% and over the unix socket.
const (
	User     = "chaosloop"
	Database = "chaosloop"
)

// Packages are the pinned Debian 12 packages of the server and its client
// (mariadb-install-db, mariadb, mariadb-dump).
var Packages = []string{
	"mariadb-server=1:10.11.19-0+deb12u1",
	"mariadb-client=1:10.11.19-0+deb12u1",
}

const (
	// Mariadbd is the server binary.
	Mariadbd = "/usr/sbin/mariadbd"
	// RunUser runs mariadbd (rsync SST as root fails with Permission
	// denied, and the datadirs must not be root's anyway).
	RunUser = "mysql"
	// StatusWait bounds a status answer. Not shorter: on the 2-core lab
	// under load, answers took over 300 ms (a Redis primary at 600
	// transfers/s was sampled "not answering", i.e. read-only, with no
	// fault); the runner's probes overlap, so a slow answer does not thin
	// the sampling.
	StatusWait = time.Second
	stopGrace  = 60 * time.Second
	// StartTimeout bounds a fresh server's first start.
	StartTimeout = 2 * time.Minute
)

// DataDir is the member's datadir: a subdirectory, so that the member
// directory can hold the config and the socket next to it.
func DataDir(m engines.Member) string { return filepath.Join(m.DataDir, "db") }

// CnfPath is the member's config file.
func CnfPath(m engines.Member) string { return filepath.Join(m.DataDir, "my.cnf") }

// ProcName is the member's mariadbd process record name.
func ProcName(m engines.Member) string { return m.Name + ".mariadbd" }

// ErrLog is mariadbd's error log.
func ErrLog(m engines.Member) string { return filepath.Join(m.LogDir, "mariadbd.err") }

// SocketPath is in DataDir unless that path is too long for a unix socket
// (108 bytes), then under /run keyed by a hash of DataDir.
func SocketPath(m engines.Member) string {
	p := filepath.Join(m.DataDir, "mariadbd.sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(m.DataDir))
	return filepath.Join("/run/chaosloop/mysql", hex.EncodeToString(h[:8])+".mariadbd.sock")
}

// ReadPassword reads the workload account's password (the cluster's
// secret name).
func ReadPassword(ctx context.Context, c *engines.Cluster, name string) (string, error) {
	pw, err := c.ReadSecret(ctx, name)
	if err != nil {
		return "", fmt.Errorf("mariadb password (written by Start): %w", err)
	}
	return pw, nil
}

// EnsurePassword returns the workload account's password, a random one
// made when no member's node has it (engines.Cluster.Secret).
func EnsurePassword(ctx context.Context, c *engines.Cluster, name string) (string, error) {
	return c.Secret(ctx, name, func() (string, error) {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return hex.EncodeToString(b), nil
	})
}

// Version reports mariadbd's version.
func Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, Mariadbd, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("mariadbd --version: %w", err)
	}
	f := strings.Fields(string(out))
	v := strings.TrimSpace(string(out))
	for i := range f {
		if f[i] == "Ver" && i+1 < len(f) {
			v = f[i+1]
		}
	}
	return v, nil
}

// Endpoints are the members' client addresses.
func Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.AddrPort(ClientPort).String()
	}
	return out
}

// DSN is a go-sql-driver/mysql DSN for the workload account on member i
// over TCP.
func DSN(c *engines.Cluster, i int, pw string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = User, pw, Database
	cfg.Net, cfg.Addr = "tcp", c.Members[i].AddrPort(ClientPort).String()
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	return cfg.FormatDSN()
}

// Config is a member's config file: the settings every engine shares,
// then extra (the engine's own lines, in the [mariadbd] section).
func Config(m engines.Member, extra string) string {
	// Memory is kept small (the whole lab shares 2 cores and many engines).
	// innodb_flush_log_at_trx_commit stays 1: a lab power-off kills every
	// process of a node, and what a node acknowledged should be on disk.
	return fmt.Sprintf(`# written by chaosloop; rewritten on every start
[mariadbd]
datadir = %s
socket = %s
pid-file = %s
log-error = %s
bind-address = %s
port = %d
skip-name-resolve
performance_schema = OFF
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 1
aria_pagecache_buffer_size = 8M
key_buffer_size = 1M
max_connections = 200
table_open_cache = 400
# A client cut off mid-transaction (its node powered off or its site
# isolated: no FIN, no RST) would otherwise hold its row locks until the
# partition heals or TCP gives up hours later, stalling every transaction
# on the same positions. A transaction idle this long is rolled back.
idle_transaction_timeout = 5
binlog_format = ROW
default_storage_engine = InnoDB
%s`, DataDir(m), SocketPath(m), filepath.Join(m.DataDir, "mariadbd.pid"), ErrLog(m),
		bindAddress(m), m.Port(ClientPort), extra)
}

// bindAddress is the member's address, and the loopback address when it
// is reached through port-forwards too (engines.Member.ListenLoopback).
// MariaDB takes a list since 10.11.
func bindAddress(m engines.Member) string {
	if m.ListenLoopback && !m.Addr.IsLoopback() {
		return m.Addr.String() + ",127.0.0.1"
	}
	return m.Addr.String()
}

// Prepare creates the member's directories owned by mysql and writes its
// config, on the member's node (c.FS; the chown runs there: RunOnce).
func Prepare(ctx context.Context, c *engines.Cluster, m engines.Member, cnf string) error {
	fs := c.FS()
	sock := filepath.Dir(SocketPath(m))
	if c.Remote() && sock != m.DataDir {
		return fmt.Errorf("%s: its socket's path %s is too long: the member's directory must be shorter", m.Name, SocketPath(m))
	}
	for _, d := range []string{m.DataDir, DataDir(m), m.LogDir, sock} {
		if err := fs.MkdirAll(ctx, m, d, 0o755); err != nil {
			return err
		}
	}
	if err := fs.WriteFile(ctx, m, CnfPath(m), []byte(cnf), 0o644); err != nil {
		return err
	}
	if c.Remote() {
		// the image's mysql user, whatever its number there
		_, err := c.RunOnce(ctx, m, proc.Spec{Name: m.Name + ".chown", Path: "chown", Args: []string{"-R", RunUser + ":" + RunUser, m.DataDir, m.LogDir}})
		if err != nil {
			return fmt.Errorf("%s: chown: %w", m.Name, err)
		}
		return nil
	}
	if err := chown(ctx, "-R", m.DataDir, m.LogDir); err != nil {
		return err
	}
	if sock != m.DataDir {
		if err := chown(ctx, sock); err != nil {
			return err
		}
	}
	// A parent directory mysql cannot traverse (e.g. a 0700 temp dir) makes
	// mariadbd fail with an obscure error much later; say so now.
	if out, err := exec.CommandContext(ctx, "setpriv", "--reuid="+RunUser, "--regid="+RunUser, "--init-groups", "--",
		"test", "-w", DataDir(m)).CombinedOutput(); err != nil {
		return fmt.Errorf("user %s cannot write %s (check the parent directories' permissions): %v %s", RunUser, DataDir(m), err, out)
	}
	return nil
}

func chown(ctx context.Context, args ...string) error {
	argv := append([]string{RunUser + ":" + RunUser}, args...)
	if out, err := exec.CommandContext(ctx, "chown", argv...).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Fresh reports whether the member holds no database yet.
func Fresh(ctx context.Context, c *engines.Cluster, m engines.Member) (bool, error) {
	has, err := c.FS().Exists(ctx, m, filepath.Join(DataDir(m), "mysql"))
	return !has, err
}

// InstallDB initialises a fresh member's datadir (root authenticated by
// unix_socket, no test database), on its node.
func InstallDB(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	out, err := c.RunOnce(ctx, m, proc.Spec{Name: m.Name + ".install-db", Path: "mariadb-install-db", Dir: m.DataDir,
		Args: []string{"--defaults-file=" + CnfPath(m), "--user=" + RunUser, "--skip-test-db", "--auth-root-authentication-method=socket"}})
	if err != nil {
		return fmt.Errorf("mariadb-install-db %s: %v\n%s", m.Name, err, out)
	}
	return nil
}

// Running reports whether the member's mariadbd runs.
func Running(ctx context.Context, c *engines.Cluster, m engines.Member) bool {
	return c.Launch().Alive(ctx, ProcName(m))
}

// StartProc starts the member's mariadbd as user mysql in its namespace
// and cgroup, with extra arguments after the config file.
func StartProc(ctx context.Context, log *slog.Logger, c *engines.Cluster, m engines.Member, extra ...string) error {
	args := append([]string{"--defaults-file=" + CnfPath(m)}, extra...)
	log.Info("starting mariadbd", "member", m.Name, "args", extra)
	_, err := c.Launch().Start(ctx, m, proc.Spec{
		Name:   ProcName(m),
		NetNS:  m.NetNS,
		User:   RunUser,
		Cgroup: m.Cgroup,
		Path:   Mariadbd,
		Args:   args,
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, "mariadbd.out"),
	})
	return err
}

// StopMember shuts member i down cleanly (SIGTERM, then SIGKILL after a grace).
func StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return c.Launch().Stop(ctx, ProcName(m), stopGrace)
}

// RootSQL runs statements as MariaDB's root over the member's unix socket
// (root is authenticated by unix_socket, as the OS root): chaosloop's own
// client here, or on a real cluster a one-shot client on the member's
// node, reading the statements (which may hold the password) from a file
// only root reads, removed after.
func RootSQL(ctx context.Context, c *engines.Cluster, m engines.Member, stmts string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if c.Remote() {
		file := filepath.Join(m.DataDir, ".root.sql")
		if err := c.FS().WriteFile(ctx, m, file, []byte(stmts), 0o600); err != nil {
			return "", err
		}
		script := `mariadb "$@" < "$0"; rc=$?; rm -f "$0"; exit $rc`
		out, err := c.RunOnce(ctx, m, proc.Spec{Name: m.Name + ".sql", Path: "sh", Dir: m.DataDir,
			Args: append([]string{"-c", script, file}, rootArgs(m)...)})
		if err != nil {
			return "", fmt.Errorf("mariadb on %s: %v: %s", m.Name, err, strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	out, err := exec.CommandContext(ctx, "mariadb", rootArgs(m, "-e", stmts)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb on %s: %v: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// rootArgs are the mariadb client's arguments for root on m's socket.
func rootArgs(m engines.Member, more ...string) []string {
	return append([]string{"--no-defaults", "--protocol=socket", "--socket=" + SocketPath(m),
		"--user=root", "--connect-timeout=2", "--batch", "--skip-column-names"}, more...)
}

// WorkloadSQL creates the workload database and (or re-keys) the workload
// account, with ALL on that database and the extra global privileges.
func WorkloadSQL(pw string, global ...string) string {
	grants := []string{"ALL ON `" + Database + "`.*"}
	for _, g := range global {
		grants = append(grants, g+" ON *.*")
	}
	return fmt.Sprintf("CREATE DATABASE IF NOT EXISTS `%s`;", Database) + AccountSQL(User, pw, grants...)
}

// AccountSQL creates (or re-keys) user for every host the lab connects
// from and grants it each of grants ("PRIV ON what").
func AccountSQL(user, pw string, grants ...string) string {
	var b strings.Builder
	for _, host := range []string{"localhost", "127.%", "198.18.0.0/255.254.0.0"} {
		fmt.Fprintf(&b, "CREATE USER IF NOT EXISTS '%[1]s'@'%[2]s' IDENTIFIED BY '%[3]s'; ALTER USER '%[1]s'@'%[2]s' IDENTIFIED BY '%[3]s';",
			user, host, pw)
		for _, g := range grants {
			fmt.Fprintf(&b, "GRANT %s TO '%s'@'%s';", g, user, host)
		}
	}
	return b.String()
}

// Open opens a pool to member m as the workload account, with short
// timeouts so that status can be sampled twice a second: over its unix
// socket in the labs, whatever their routing; on a real cluster over TCP
// at its client port, through c's dialer (a port-forward). The caller
// closes it.
func Open(c *engines.Cluster, m engines.Member, pw string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = User, pw
	cfg.Net, cfg.Addr = "unix", SocketPath(m)
	if c.Remote() {
		cfg.Net, cfg.Addr, cfg.DialFunc = "tcp", m.AddrPort(ClientPort).String(), c.Dialer()
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = StatusWait, StatusWait, StatusWait
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// TimedOut tells a status query that ran out of time (the server is running
// but slow: no evidence about the service) from one that was refused.
// go-sql-driver reports a read that ran past ReadTimeout as an invalid
// connection.
func TimedOut(err error) bool {
	return lab.IsTimeout(err) || errors.Is(err, mysql.ErrInvalidConn)
}
