// Package galera runs a MariaDB Galera cluster (MariaDB 10.11, Galera 4) as a
// lab engine: one mariadbd per engines.Member, run as user mysql in the
// member's network namespace and cgroup. It stands for MySQL group
// replication: a synchronous, quorum-based (Primary component) database.
//
// Control traffic (status, user setup, pc.bootstrap) goes over each member's
// unix socket, so it works whatever the lab's routing; workloads use TCP on
// Member.Addr:3306 through DSN.
package galera

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Ports every member binds on its Member.Addr.
const (
	ClientPort = 3306
	GroupPort  = 4567 // gcomm (group communication)
	ISTPort    = 4568 // incremental state transfer
	SSTPort    = 4444 // rsync state snapshot transfer
)

// User and Database are the account and schema created for workloads (and
// used for status queries). The account may connect from the lab network
// 198.18.0.0/15, from loopback 127.% and over the unix socket.
const (
	User     = "chaosloop"
	Database = "chaosloop"
)

// Packages are the pinned Debian 12 packages the engine needs: rsync, ss
// (iproute2) and lsof are used by the rsync state transfer script.
var Packages = []string{
	"mariadb-server=1:10.11.19-0+deb12u1",
	"mariadb-client=1:10.11.19-0+deb12u1",
	"galera-4=26.4.23-0+deb12u1",
	"rsync=3.5.0+ds1-0+deb12u1",
	"iproute2=6.1.0-3",
	"lsof=4.95.0-1",
}

const (
	mariadbd = "/usr/sbin/mariadbd"
	provider = "/usr/lib/galera/libgalera_smm.so"
	runUser  = "mysql" // rsync SST as root fails with Permission denied
	// A member that has not answered a status question within this is not
	// Up. Not shorter: on the 2-core lab under load, answers took over
	// 300 ms (a Redis primary at 600 transfers/s was sampled "not
	// answering", i.e. read-only, with no fault); the runner's probes
	// overlap, so a slow answer does not thin the sampling.
	statusWait   = time.Second
	stopGrace    = 60 * time.Second
	syncTimeout  = 5 * time.Minute
	startTimeout = 2 * time.Minute
)

// Engine runs Galera clusters. It keeps no state of its own: everything is
// in the members' directories and the cluster's state directory.
type Engine struct {
	log *slog.Logger
}

// New returns an Engine logging to log.
func New(log *slog.Logger) *Engine {
	return &Engine{log: log}
}

// Install installs the pinned packages.
func (e *Engine) Install(ctx context.Context) error {
	return engines.AptInstall(ctx, e.log, Packages...)
}

// Version reports the MariaDB server and Galera library versions.
func (e *Engine) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, mariadbd, "--version").Output()
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
	if g, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", "galera-4").Output(); err == nil {
		v += " galera-4 " + string(g)
	}
	return v, nil
}

// Endpoints are the members' client addresses.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = net.JoinHostPort(m.Addr.String(), strconv.Itoa(ClientPort))
	}
	return out
}

// DSN returns a go-sql-driver/mysql DSN for the workload account on member
// i over TCP. The password is created by Start. Reads on a member may lag
// writes made on another one (Galera applies asynchronously); a checker that
// needs read-your-writes across members adds the session variable
// wsrep_sync_wait=1 (mysql.Config.Params).
func (e *Engine) DSN(c *engines.Cluster, i int) (string, error) {
	pw, err := readPassword(c)
	if err != nil {
		return "", err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = User, pw, Database
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(c.Members[i].Addr.String(), strconv.Itoa(ClientPort))
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	return cfg.FormatDSN(), nil
}

// member paths. The datadir is a subdirectory so that the member directory
// can hold the config and the socket next to it.
func dataDir(m engines.Member) string { return filepath.Join(m.DataDir, "db") }
func cnfPath(m engines.Member) string { return filepath.Join(m.DataDir, "my.cnf") }
func procName(m engines.Member) string {
	return m.Name + ".mariadbd"
}
func passwordPath(c *engines.Cluster) string {
	return filepath.Join(c.StateDir, c.Service+".galera-password")
}

// socketPath is in DataDir unless that path is too long for a unix socket
// (108 bytes), then under /run keyed by a hash of DataDir, in a directory
// of mysql's own (redis's long socket paths have theirs: a shared one is
// chowned to whichever engine prepared last, and the other's bind fails).
func socketPath(m engines.Member) string {
	p := filepath.Join(m.DataDir, "mariadbd.sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(m.DataDir))
	return filepath.Join("/run/chaosloop/mysql", hex.EncodeToString(h[:8])+".mariadbd.sock")
}

func readPassword(c *engines.Cluster) (string, error) {
	b, err := os.ReadFile(passwordPath(c))
	if err != nil {
		return "", fmt.Errorf("galera password (written by Start): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func ensurePassword(c *engines.Cluster) (string, error) {
	if pw, err := readPassword(c); err == nil {
		return pw, nil
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(b)
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(passwordPath(c), []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	return pw, nil
}

func config(c *engines.Cluster, m engines.Member) string {
	var peers []string
	for _, p := range c.Members {
		peers = append(peers, net.JoinHostPort(p.Addr.String(), strconv.Itoa(GroupPort)))
	}
	a := m.Addr.String()
	// Memory is kept small (the whole lab shares 2 cores and many engines).
	// innodb_flush_log_at_trx_commit stays 1: a lab power-off kills every
	// process of a node, and what a node acknowledged should be on disk.
	return fmt.Sprintf(`# written by chaosloop; rewritten on every start
[mariadbd]
datadir = %[1]s
socket = %[2]s
pid-file = %[3]s
log-error = %[4]s
bind-address = %[5]s
port = %[6]d
skip-name-resolve
performance_schema = OFF
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 1
innodb_autoinc_lock_mode = 2
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
wsrep_on = ON
wsrep_provider = %[7]s
wsrep_cluster_name = %[8]s
wsrep_cluster_address = gcomm://%[9]s
wsrep_node_name = %[10]s
wsrep_node_address = %[5]s
wsrep_node_incoming_address = %[5]s:%[6]d
wsrep_sst_method = rsync
wsrep_sst_receive_address = %[5]s:%[11]d
wsrep_provider_options = "gmcast.listen_addr=tcp://%[5]s:%[12]d; ist.recv_addr=%[5]s:%[13]d; base_host=%[5]s; gcache.size=64M"
`, dataDir(m), socketPath(m), filepath.Join(m.DataDir, "mariadbd.pid"), filepath.Join(m.LogDir, "mariadbd.err"),
		a, ClientPort, provider, c.Service, strings.Join(peers, ","), m.Name, SSTPort, GroupPort, ISTPort)
}

// prepare creates the member's directories owned by mysql and writes its
// config.
func prepare(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	sock := filepath.Dir(socketPath(m))
	for _, d := range []string{m.DataDir, dataDir(m), m.LogDir, sock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(cnfPath(m), []byte(config(c, m)), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "chown", "-R", runUser+":"+runUser, m.DataDir, m.LogDir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v: %s", m.DataDir, err, out)
	}
	if sock != m.DataDir {
		if out, err := exec.CommandContext(ctx, "chown", runUser+":"+runUser, sock).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", sock, err, out)
		}
	}
	// A parent directory mysql cannot traverse (e.g. a 0700 temp dir) makes
	// mariadbd fail with an obscure error much later; say so now.
	if out, err := exec.CommandContext(ctx, "setpriv", "--reuid="+runUser, "--regid="+runUser, "--init-groups", "--",
		"test", "-w", dataDir(m)).CombinedOutput(); err != nil {
		return fmt.Errorf("user %s cannot write %s (check the parent directories' permissions): %v %s", runUser, dataDir(m), err, out)
	}
	return nil
}

// fresh reports whether the member holds no database yet.
func fresh(m engines.Member) bool {
	_, err := os.Stat(filepath.Join(dataDir(m), "mysql"))
	return errors.Is(err, os.ErrNotExist)
}

func record(c *engines.Cluster, m engines.Member) *proc.Record {
	r, err := proc.Load(c.StateDir, procName(m))
	if err != nil || !r.Alive() {
		return nil
	}
	return r
}

func (e *Engine) startProc(c *engines.Cluster, m engines.Member, extra ...string) error {
	args := append([]string{"--defaults-file=" + cnfPath(m)}, extra...)
	e.log.Info("starting mariadbd", "member", m.Name, "args", extra)
	_, err := proc.Start(c.StateDir, proc.Spec{
		Name:   procName(m),
		NetNS:  m.NetNS,
		User:   runUser,
		Cgroup: m.Cgroup,
		Path:   mariadbd,
		Args:   args,
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, "mariadbd.out"),
	})
	return err
}

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
func (s nodeState) synced() bool  { return s.primary() && s.Ready && s.State == "Synced" }

// query reads a member's wsrep status over its unix socket, with short
// timeouts so that Status can be sampled twice a second.
func query(ctx context.Context, pw string, m engines.Member) (nodeState, error) {
	var st nodeState
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = User, pw
	cfg.Net, cfg.Addr = "unix", socketPath(m)
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = statusWait, statusWait, statusWait
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return st, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
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

// rootSQL runs statements as MariaDB's root over the unix socket (root is
// authenticated by unix_socket, as the OS root running chaosloop).
func rootSQL(ctx context.Context, m engines.Member, stmts string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--protocol=socket", "--socket="+socketPath(m),
		"--user=root", "--connect-timeout=2", "--batch", "--skip-column-names", "-e", stmts).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb on %s: %v: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ensureUser creates (or re-keys) the workload account on member m, which
// must be in the Primary component; Galera replicates it.
func ensureUser(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	pw, err := ensurePassword(c)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS `%s`;", Database)
	for _, host := range []string{"localhost", "127.%", "198.18.0.0/255.254.0.0"} {
		fmt.Fprintf(&b, "CREATE USER IF NOT EXISTS '%[1]s'@'%[2]s' IDENTIFIED BY '%[3]s'; ALTER USER '%[1]s'@'%[2]s' IDENTIFIED BY '%[3]s'; GRANT ALL ON `%[4]s`.* TO '%[1]s'@'%[2]s';",
			User, host, pw, Database)
	}
	_, err = rootSQL(ctx, m, b.String())
	return err
}

// waitMember waits until member i's state satisfies ok; it gives up at
// once if the member's mariadbd ends (e.g. a joiner that found no Primary).
func (e *Engine) waitMember(ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string, ok func(nodeState) bool) error {
	m := c.Members[i]
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := engines.WaitFor(ctx, timeout, 250*time.Millisecond, m.Name+" "+what, func(ctx context.Context) error {
		if record(c, m) == nil {
			err := fmt.Errorf("mariadbd of %s is not running (see %s)", m.Name, filepath.Join(m.LogDir, "mariadbd.err"))
			cancel(err)
			return err
		}
		pw, err := readPassword(c)
		if err != nil {
			return err
		}
		st, err := query(ctx, pw, m)
		if err != nil {
			return err
		}
		if !ok(st) {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", m.Name, what, cause)
	}
	return err
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
	if _, err := ensurePassword(c); err != nil {
		return err
	}
	running := false
	allFresh := true
	for _, m := range c.Members {
		running = running || record(c, m) != nil
		allFresh = allFresh && fresh(m)
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
	out, err := exec.CommandContext(ctx, "mariadb-install-db", "--defaults-file="+cnfPath(m), "--user="+runUser,
		"--skip-test-db", "--auth-root-authentication-method=socket").CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-install-db %s: %v\n%s", m.Name, err, out)
	}
	if err := e.startProc(c, m, "--wsrep-new-cluster"); err != nil {
		return err
	}
	err = engines.WaitFor(ctx, startTimeout, 250*time.Millisecond, m.Name+" creating user", func(ctx context.Context) error {
		if record(c, m) == nil {
			return fmt.Errorf("mariadbd of %s ended (see %s)", m.Name, filepath.Join(m.LogDir, "mariadbd.err"))
		}
		return ensureUser(ctx, c, m)
	})
	if err != nil {
		return err
	}
	return e.waitMember(ctx, c, 0, startTimeout, "Primary and Synced", nodeState.synced)
}

// primaryMember waits up to d for a running member in a Primary component
// (any state: a Primary with only a donor left still must not be re-bootstrapped).
func (e *Engine) primaryMember(ctx context.Context, c *engines.Cluster, d time.Duration) (int, bool) {
	pw, err := readPassword(c)
	if err != nil {
		return -1, false
	}
	found := -1
	// d is at least a second, so that a zero d still checks every member.
	_ = engines.WaitFor(ctx, max(d, time.Second), 250*time.Millisecond, "primary component", func(ctx context.Context) error {
		for i, m := range c.Members {
			if record(c, m) == nil {
				continue
			}
			if st, err := query(ctx, pw, m); err == nil && st.primary() {
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
	return ensureUser(ctx, c, c.Members[0])
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
	if record(c, m) == nil {
		var extra []string
		if !fresh(m) {
			if pos, err := e.position(ctx, m); err != nil {
				e.log.Warn("position recovery failed; the member will need SST", "member", m.Name, "err", err)
			} else if pos.Seqno >= 0 {
				extra = append(extra, "--wsrep_start_position="+pos.String())
			}
		}
		return e.startProc(c, m, extra...)
	}
	return nil
}

// StopMember shuts member i down cleanly (SIGTERM, then SIGKILL after a grace).
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	r, err := proc.Load(c.StateDir, procName(m))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.Stop(ctx, stopGrace); err != nil {
		return err
	}
	return proc.Forget(c.StateDir, procName(m))
}

// Stop stops all members, the last one last, so that it is marked safe to
// bootstrap.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	var errs []error
	for i := len(c.Members) - 1; i >= 0; i-- {
		errs = append(errs, e.StopMember(ctx, c, i))
	}
	return errors.Join(errs...)
}

// Status samples every member over its socket.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	s := engines.Status{Engine: "galera", Members: make([]engines.MemberStatus, len(c.Members))}
	pw, pwErr := readPassword(c)
	type res struct {
		i  int
		ms engines.MemberStatus
	}
	ch := make(chan res, len(c.Members))
	for i, m := range c.Members {
		go func() {
			ms := engines.MemberStatus{Index: i, Name: m.Name}
			if record(c, m) == nil {
				ms.Detail = "not running"
				ch <- res{i, ms}
				return
			}
			switch st, err := query(ctx, pw, m); {
			case pwErr != nil:
				ms.Detail = pwErr.Error()
			case err != nil:
				ms.Detail = "not answering: " + err.Error()
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

// Position is a member's replication position (Galera GTID).
type Position struct {
	UUID  string
	Seqno int64
}

func (p Position) String() string { return p.UUID + ":" + strconv.FormatInt(p.Seqno, 10) }

// grastate reads the saved state: seqno is -1 after a crash.
func grastate(m engines.Member) (Position, bool, error) {
	f, err := os.Open(filepath.Join(dataDir(m), "grastate.dat"))
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
	if fresh(m) {
		return Position{Seqno: -1}, nil
	}
	if p, _, err := grastate(m); err == nil && p.Seqno >= 0 {
		return p, nil
	}
	logf := filepath.Join(m.DataDir, "wsrep-recover.log")
	_ = os.Remove(logf)
	argv := []string{"setpriv", "--reuid=" + runUser, "--regid=" + runUser, "--init-groups", "--",
		mariadbd, "--defaults-file=" + cnfPath(m), "--wsrep-recover", "--log-error=" + logf}
	if m.NetNS != "" {
		argv = append([]string{"ip", "netns", "exec", m.NetNS}, argv...)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(rctx, argv[0], argv[1:]...).CombinedOutput()
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
		running := record(c, m) != nil
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
			allFresh = allFresh && fresh(m) && record(c, m) == nil
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
		if _, err := rootSQL(ctx, m, "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'"); err != nil {
			return err
		}
	} else {
		if err := markSafeToBootstrap(m); err != nil {
			return err
		}
		if err := e.startProc(c, m, "--wsrep-new-cluster", "--wsrep_start_position="+bestPos.String()); err != nil {
			return err
		}
	}
	if err := e.waitMember(ctx, c, best, startTimeout, "Primary and Synced", nodeState.synced); err != nil {
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
	p := filepath.Join(dataDir(m), "grastate.dat")
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
