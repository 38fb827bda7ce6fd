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

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
)

// Ports every member binds on its Member.Addr.
const (
	ClientPort = mariadb.ClientPort
	GroupPort  = 4567 // gcomm (group communication)
	ISTPort    = 4568 // incremental state transfer
	SSTPort    = 4444 // rsync state snapshot transfer
)

// User and Database are the account and schema created for workloads (and
// used for status queries). The account may connect from the lab network
// 198.18.0.0/15, from loopback 127.% and over the unix socket.
const (
	User     = mariadb.User
	Database = mariadb.Database
)

// Packages are the pinned Debian 12 packages the engine needs: MariaDB's,
// Galera's, and rsync, ss (iproute2) and lsof, which the rsync state
// transfer script uses.
var Packages = append(append([]string{}, mariadb.Packages...),
	"galera-4=26.4.23-0+deb12u1",
	"rsync=3.5.0+ds1-0+deb12u1",
	"iproute2=6.1.0-3",
	"lsof=4.95.0-1",
)

const (
	provider    = "/usr/lib/galera/libgalera_smm.so"
	syncTimeout = 5 * time.Minute
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
	v, err := mariadb.Version(ctx)
	if err != nil {
		return "", err
	}
	if g, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", "galera-4").Output(); err == nil {
		v += " galera-4 " + string(g)
	}
	return v, nil
}

// Endpoints are the members' client addresses.
func (e *Engine) Endpoints(c *engines.Cluster) []string { return mariadb.Endpoints(c) }

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
	return mariadb.DSN(c, i, pw), nil
}

func passwordPath(c *engines.Cluster) string {
	return filepath.Join(c.StateDir, c.Service+".galera-password")
}

func readPassword(c *engines.Cluster) (string, error) { return mariadb.ReadPassword(passwordPath(c)) }

func ensurePassword(c *engines.Cluster) (string, error) {
	return mariadb.EnsurePassword(passwordPath(c))
}

func config(c *engines.Cluster, m engines.Member) string {
	var peers []string
	for _, p := range c.Members {
		peers = append(peers, net.JoinHostPort(p.Addr.String(), strconv.Itoa(GroupPort)))
	}
	a := m.Addr.String()
	// innodb_autoinc_lock_mode 2 is what Galera requires.
	return mariadb.Config(m, fmt.Sprintf(`innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = %[1]s
wsrep_cluster_name = %[2]s
wsrep_cluster_address = gcomm://%[3]s
wsrep_node_name = %[4]s
wsrep_node_address = %[5]s
wsrep_node_incoming_address = %[5]s:%[6]d
wsrep_sst_method = rsync
wsrep_sst_receive_address = %[5]s:%[7]d
wsrep_provider_options = "gmcast.listen_addr=tcp://%[5]s:%[8]d; ist.recv_addr=%[5]s:%[9]d; base_host=%[5]s; gcache.size=64M; evs.suspect_timeout=%[10]s; evs.inactive_timeout=%[11]s"
`, provider, c.Service, strings.Join(peers, ","), m.Name, a, ClientPort, SSTPort, GroupPort, ISTPort,
		isoSeconds(SuspectTimeout), isoSeconds(InactiveTimeout)))
}

// Group communication timing (Galera's defaults, made explicit so that the
// failover budget follows them): a member silent for SuspectTimeout is
// evicted once the others agree; one silent for InactiveTimeout is
// dropped whatever the others say.
const (
	SuspectTimeout  = 5 * time.Second
	InactiveTimeout = 15 * time.Second
)

// FailoverBudget: the worst case, eviction without agreement at
// InactiveTimeout, plus margin.
func FailoverBudget() engines.Budget {
	return engines.WithMargin(InactiveTimeout, fmt.Sprintf("Galera evs.inactive_timeout %s (evs.suspect_timeout %s)", InactiveTimeout, SuspectTimeout))
}

// isoSeconds writes a duration as Galera's ISO 8601 period, e.g. PT5S.
func isoSeconds(d time.Duration) string { return fmt.Sprintf("PT%dS", int(d.Seconds())) }

// prepare creates the member's directories owned by mysql and writes its
// config.
func prepare(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	return mariadb.Prepare(ctx, m, config(c, m))
}

func (e *Engine) startProc(c *engines.Cluster, m engines.Member, extra ...string) error {
	return mariadb.StartProc(e.log, c, m, extra...)
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
	db, err := mariadb.OpenSocket(m, pw)
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

// ensureUser creates (or re-keys) the workload account on member m, which
// must be in the Primary component; Galera replicates it.
func ensureUser(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	pw, err := ensurePassword(c)
	if err != nil {
		return err
	}
	_, err = mariadb.RootSQL(ctx, m, mariadb.WorkloadSQL(pw))
	return err
}

// waitMember waits until member i's state satisfies ok; it gives up at
// once if the member's mariadbd ends (e.g. a joiner that found no Primary).
func (e *Engine) waitMember(ctx context.Context, c *engines.Cluster, i int, timeout time.Duration, what string, ok func(nodeState) bool) error {
	return mariadb.WaitState(ctx, c, i, timeout, what, passwordPath(c), query, ok)
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
		running = running || mariadb.Record(c, m) != nil
		allFresh = allFresh && mariadb.Fresh(m)
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
	if err := mariadb.InstallDB(ctx, m); err != nil {
		return err
	}
	if err := e.startProc(c, m, "--wsrep-new-cluster"); err != nil {
		return err
	}
	err := mariadb.WaitRunning(ctx, c, 0, mariadb.StartTimeout, "creating user", func(ctx context.Context) error {
		return ensureUser(ctx, c, m)
	})
	if err != nil {
		return err
	}
	return e.waitMember(ctx, c, 0, mariadb.StartTimeout, "Primary and Synced", nodeState.synced)
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
			if mariadb.Record(c, m) == nil {
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
	if mariadb.Record(c, m) == nil {
		var extra []string
		if !mariadb.Fresh(m) {
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
	return mariadb.StopMember(ctx, c, i)
}

// Stop stops all members, the last one last, so that it is marked safe to
// bootstrap.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopLastFirst(c, func(i int) error { return e.StopMember(ctx, c, i) })
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
			if mariadb.Record(c, m) == nil {
				ms.Detail = "not running"
				ch <- res{i, ms}
				return
			}
			switch st, err := query(ctx, pw, m); {
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
		running := mariadb.Record(c, m) != nil
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
			allFresh = allFresh && mariadb.Fresh(m) && mariadb.Record(c, m) == nil
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
		if err := e.startProc(c, m, "--wsrep-new-cluster", "--wsrep_start_position="+bestPos.String()); err != nil {
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
