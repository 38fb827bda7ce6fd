package docstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Roles reported in MemberStatus.Role (Patroni's own names).
const (
	RoleLeader      = "leader"
	RoleSyncStandby = "sync_standby"
	RoleReplica     = "replica"
)

// Deadlines are sized for a CPU-starved machine (a 2-core CI runner with
// other labs running), not an idle one: they bound a wait for a condition,
// they are not expectations.
const (
	startTimeout = 3 * time.Minute
	// memberTimeout bounds waiting for one member's processes to answer.
	memberTimeout = 3 * time.Minute
	// probeTimeout bounds one Patroni REST call or FerretDB ping; Patroni
	// is Python and answers late when CPU-starved.
	probeTimeout = 3 * time.Second
)

func procName(m engines.Member, what string) string { return m.Name + "." + what }

// ProcessNames name member m's processes (their pods on a cluster):
// Patroni's first, which stands for the member (its PostgreSQL holds the
// data), then its etcd's and FerretDB's.
func ProcessNames(m engines.Member) []string {
	return []string{procName(m, "patroni"), procName(m, "etcd"), procName(m, "ferretdb")}
}

// Endpoints are mongodb:// URIs of the members' FerretDBs. FerretDB is not a
// replica set, so each URI connects directly to one instance.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = fmt.Sprintf("mongodb://%s/?directConnection=true", m.AddrPort(FerretDBPort))
	}
	return out
}

// Start starts every member and returns once Patroni has a leader, a
// synchronous standby and every member running, and every FerretDB answers
// ping. Processes already running are left alone.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	if len(c.Members) == 0 {
		return errors.New("docstore: no members")
	}
	seen := map[netip.Addr]string{}
	for _, m := range c.Members {
		// Every member uses the same ports on its own address.
		if o, dup := seen[m.Addr]; dup {
			return fmt.Errorf("docstore: members %s and %s share address %s", o, m.Name, m.Addr)
		}
		seen[m.Addr] = m.Name
	}
	t0 := time.Now()
	for i := range c.Members {
		if err := prepareMember(ctx, c, i); err != nil {
			return err
		}
	}
	// etcd members wait for one another, so all start before any check.
	for i := range c.Members {
		if err := e.startEtcd(ctx, c, i); err != nil {
			return err
		}
	}
	for i := range c.Members {
		if err := e.startPatroni(ctx, c, i); err != nil {
			return err
		}
	}
	if err := e.waitLeaderAndSync(ctx, c); err != nil {
		return err
	}
	tPG := time.Now()
	for i := range c.Members {
		if err := e.startFerretDB(ctx, c, i); err != nil {
			return err
		}
	}
	for i := range c.Members {
		if err := engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, c.Members[i].Name+" FerretDB ping",
			func(ctx context.Context) error { return e.ping(ctx, c, i) }); err != nil {
			return err
		}
	}
	e.log.Info("docstore up", "service", c.Service, "members", len(c.Members),
		"patroni", tPG.Sub(t0).Round(time.Millisecond), "total", time.Since(t0).Round(time.Millisecond))
	return nil
}

// StartMember starts member i's etcd, Patroni and FerretDB (those not
// running) and waits until its Patroni API and FerretDB listener answer. It
// does not wait for the member to catch up: Status shows that.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	if err := e.Launch(ctx, c, i); err != nil {
		return err
	}
	m := c.Members[i]
	if !etcdMajorityRunning(ctx, c) {
		// Patroni serves nothing before its store (etcd, one member per
		// node) has quorum: it starts when enough nodes are back.
		e.log.Info("docstore: member started, waiting for its store's quorum", "member", m.Name)
		return nil
	}
	return engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, m.Name+" Patroni API and FerretDB listener",
		func(ctx context.Context) error {
			if _, err := patroniGet[patroniNode](ctx, c, m, "/patroni"); err != nil {
				return err
			}
			return dial(ctx, c, m, FerretDBPort)
		})
}

// Launch starts member i's processes (etcd, Patroni, FerretDB) unless they
// run, without waiting for them: members powered on together must all run
// before their store can have quorum.
func (e *Engine) Launch(ctx context.Context, c *engines.Cluster, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("docstore: no member %d", i)
	}
	if err := prepareMember(ctx, c, i); err != nil {
		return err
	}
	if err := e.startEtcd(ctx, c, i); err != nil {
		return err
	}
	if err := e.startPatroni(ctx, c, i); err != nil {
		return err
	}
	return e.startFerretDB(ctx, c, i)
}

// etcdMajorityRunning reports whether a strict majority of the members'
// etcd processes runs.
func etcdMajorityRunning(ctx context.Context, c *engines.Cluster) bool {
	n := 0
	for _, m := range c.Members {
		if running(ctx, c, procName(m, "etcd")) {
			n++
		}
	}
	return 2*n > len(c.Members)
}

func running(ctx context.Context, c *engines.Cluster, name string) bool {
	return c.Launch().Alive(ctx, name)
}

// start starts spec's process for member m unless it runs. (A killed
// process whose threads are still exiting runs: proc.Record.Alive.)
func (e *Engine) start(ctx context.Context, c *engines.Cluster, m engines.Member, spec proc.Spec) error {
	if running(ctx, c, spec.Name) {
		return nil
	}
	where, err := c.Launch().Start(ctx, m, spec)
	if err != nil {
		return err
	}
	e.log.Debug("started", "process", spec.Name, "at", where)
	return nil
}

func (e *Engine) startEtcd(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	p := memberPaths(m)
	peers := make([]string, len(c.Members))
	for j, o := range c.Members {
		peers[j] = o.Name + "=http://" + o.AddrPort(EtcdPeerPort).String()
	}
	client := "http://" + m.AddrPort(EtcdClientPort).String()
	peer := "http://" + m.AddrPort(EtcdPeerPort).String()
	return e.start(ctx, c, m, proc.Spec{
		Name: procName(m, "etcd"), NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: "etcd",
		Args: []string{
			"--name", m.Name, "--data-dir", p.etcd,
			"--listen-client-urls", etcdListenClientURLs(m), "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			// Ignored once the data dir exists (restarts rejoin).
			"--initial-cluster", strings.Join(peers, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", c.Service,
			// Patroni's `etcd:` store speaks the v2 API.
			"--enable-v2=true",
			// Off by default in 3.4 (as the etcd engine's note says): a
			// member back from an isolation forced an election with its
			// inflated term, the leader's Patroni could not renew its lock
			// and stopped its PostgreSQL, and the store was read-only for
			// ~12 s after the heal (kind quickstart on k3s, 2026-12-05: the
			// samples' details say "bulk-db-0 … down (leader): postgres
			// stopping").
			"--pre-vote=true",
		},
		Log: p.etcdLog,
	})
}

// etcdListenClientURLs are where member m's etcd takes its clients'
// connections: its address, and loopback when it must.
func etcdListenClientURLs(m engines.Member) string {
	urls := "http://" + m.AddrPort(EtcdClientPort).String()
	if loopback(m) {
		urls += fmt.Sprintf(",http://127.0.0.1:%d", m.Port(EtcdClientPort))
	}
	return urls
}

func (e *Engine) startPatroni(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	p := memberPaths(m)
	return e.start(ctx, c, m, proc.Spec{
		Name: procName(m, "patroni"), NetNS: m.NetNS, Cgroup: m.Cgroup, User: "postgres",
		Path: "patroni", Args: []string{p.patroniYAML},
		Env: []string{"HOME=/var/lib/postgresql", "PGPASSFILE=" + p.pgpass},
		Dir: m.DataDir,
		Log: p.patroniLog,
	})
}

func (e *Engine) startFerretDB(ctx context.Context, c *engines.Cluster, i int) error {
	bin := e.FerretDBPath()
	if _, err := os.Stat(bin); err != nil && !c.Remote() {
		// on a cluster it is in the engine's image, at the same path
		return fmt.Errorf("FerretDB is not built (run Install): %w", err)
	}
	m := c.Members[i]
	p := memberPaths(m)
	return e.start(ctx, c, m, proc.Spec{
		Name: procName(m, "ferretdb"), NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: bin,
		Args: []string{
			"--handler=postgresql",
			"--postgresql-url=" + FerretDBURL(c, m),
			"--listen-addr=" + bindOne(m, FerretDBPort),
			"--debug-addr=" + m.AddrPort(FerretDBDebugPort).String(),
			"--state-dir=" + p.ferret,
			"--telemetry=disable",
			"--log-format=text",
		},
		Dir: p.ferret,
		Log: p.ferrLog,
	})
}

// StopMember stops member i: FerretDB, then Patroni (which shuts its
// PostgreSQL down, handing leadership over), then whatever PostgreSQL is
// left, then etcd. It returns once every process of the member is gone.
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return errors.Join(
		stopProc(ctx, c, procName(m, "ferretdb"), ferretGrace, nil),
		stopPatroni(ctx, c, m),
		stopProc(ctx, c, procName(m, "etcd"), etcdGrace, nil),
	)
}

// stopPatroni stops member m's Patroni and then its PostgreSQL, in case
// Patroni did not (SIGKILLed earlier, or after its grace).
func stopPatroni(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	if c.Launcher != nil {
		// the postmaster runs in Patroni's pod, which ends with it
		return stopProc(ctx, c, procName(m, "patroni"), patroniGrace, nil)
	}
	return errors.Join(
		stopProc(ctx, c, procName(m, "patroni"), patroniGrace, notPostmaster(m)),
		stopPostgres(ctx, m),
	)
}

// Stop stops every member, in phases: all FerretDBs, then the Patronis one
// by one (the first member last, so that leadership moves as little as
// possible), then the etcds. etcd keeps its quorum while the Patronis shut
// down, so they clean up their keys instead of retrying an absent DCS.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	var errs []error
	for _, m := range c.Members {
		errs = append(errs, stopProc(ctx, c, procName(m, "ferretdb"), ferretGrace, nil))
	}
	for i := len(c.Members) - 1; i >= 0; i-- {
		errs = append(errs, stopPatroni(ctx, c, c.Members[i]))
	}
	for _, m := range c.Members {
		errs = append(errs, stopProc(ctx, c, procName(m, "etcd"), etcdGrace, nil))
	}
	return errors.Join(errs...)
}
