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
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
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

// Engine runs Galera clusters. Its state is in the members' directories
// and the cluster's state directory; on a real cluster's nodes (a remote
// cluster) it keeps the workload account's password once read, since
// reading it there is a command on a node.
type Engine struct {
	log       *slog.Logger
	passwords sync.Map // service → password, of remote clusters
}

// New returns an Engine logging to log.
func New(log *slog.Logger) *Engine {
	return &Engine{log: log}
}

// Install installs the pinned packages.
func (e *Engine) Install(ctx context.Context) error {
	return install.Apt(ctx, e.log, Packages...)
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
	pw, err := e.readPassword(context.Background(), c)
	if err != nil {
		return "", err
	}
	return mariadb.DSN(c, i, pw), nil
}

// passwordName names the workload account's password file (mariadb.PasswordFile).
func passwordName(c *engines.Cluster) string { return c.Service + ".galera-password" }

func (e *Engine) readPassword(ctx context.Context, c *engines.Cluster) (string, error) {
	if pw, ok := e.passwords.Load(c.Service); ok && c.Remote() {
		return pw.(string), nil
	}
	pw, err := mariadb.ReadPassword(ctx, c, passwordName(c))
	if err == nil && c.Remote() {
		e.passwords.Store(c.Service, pw)
	}
	return pw, err
}

func (e *Engine) ensurePassword(ctx context.Context, c *engines.Cluster) (string, error) {
	pw, err := mariadb.EnsurePassword(ctx, c, passwordName(c))
	if err == nil && c.Remote() {
		e.passwords.Store(c.Service, pw)
	}
	return pw, err
}

func config(c *engines.Cluster, m engines.Member) string {
	var peers []string
	for _, p := range c.Members {
		peers = append(peers, p.AddrPort(GroupPort).String())
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
`, provider, c.Service, strings.Join(peers, ","), m.Name, a, m.Port(ClientPort), m.Port(SSTPort), m.Port(GroupPort), m.Port(ISTPort),
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
	return mariadb.Prepare(ctx, c, m, config(c, m))
}

func (e *Engine) startProc(ctx context.Context, c *engines.Cluster, m engines.Member, extra ...string) error {
	return mariadb.StartProc(ctx, e.log, c, m, extra...)
}
