// Package redis runs Redis 7.0 with Sentinel as a lab engine: on each
// engines.Member one redis-server (member 0 the first primary, the others its
// replicas) and one Sentinel, run as user redis in the member's network
// namespace and cgroup. Sentinel elects a new primary when the primary fails;
// replication is asynchronous, so acknowledged writes can be lost, which is
// what the lab is there to show.
//
// Persistence is on for every member: appendonly yes with appendfsync
// everysec. The lab's faults kill processes (a node power-off kills every
// process of the node), not the kernel: whatever a killed redis-server had
// written is in the page cache and survives, so "always" would add an fsync
// per write on the 2 shared cores without making a lab fault lose less.
//
// Control traffic (status, Sentinel queries) goes over unix sockets, so it
// works whatever the lab's routing; workloads use Sentinel on TCP
// (FailoverOptions).
package redis

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

// Ports every member binds on its Member.Addr.
const (
	Port         = 6379
	SentinelPort = 26379
)

// Sentinel timing: a primary unreachable for DownAfter is failed over
// (measured ~3.4 s from kill -9 to a new primary).
const (
	DownAfter       = 2 * time.Second
	FailoverTimeout = 10 * time.Second
)

// FailoverBudget: Sentinel declares the primary down after DownAfter and
// has FailoverTimeout to promote a replica, plus margin.
func FailoverBudget() engines.Budget {
	return engines.WithMargin(DownAfter+FailoverTimeout, fmt.Sprintf("Sentinel down-after-milliseconds %s + failover-timeout %s = %s", DownAfter, FailoverTimeout, DownAfter+FailoverTimeout))
}

// Packages are the pinned Debian 12 packages the engine needs.
var Packages = []string{
	"redis-server=5:7.0.15-1~deb12u10",
	"redis-sentinel=5:7.0.15-1~deb12u10",
	"redis-tools=5:7.0.15-1~deb12u10",
}

const (
	redisServer = "/usr/bin/redis-server"
	runUser     = "redis"
	// A member that has not answered a status question within this is not
	// Up. Not shorter: on the 2-core lab under load, answers took over
	// 300 ms (a Redis primary at 600 transfers/s was sampled "not
	// answering", i.e. read-only, with no fault); the runner's probes
	// overlap, so a slow answer does not thin the sampling.
	statusWait  = time.Second
	stopGrace   = 20 * time.Second
	waitTimeout = 2 * time.Minute
)

// Engine runs Redis+Sentinel clusters. It keeps no state of its own:
// everything is in the members' directories and the cluster's state dir.
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

// Version reports redis-server's version.
func (e *Engine) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, redisServer, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("redis-server --version: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			return v, nil
		}
	}
	return strings.TrimSpace(string(out)), nil
}

// Endpoints are the members' redis addresses.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = net.JoinHostPort(m.Addr.String(), strconv.Itoa(Port))
	}
	return out
}

// MasterName is the name the Sentinels monitor the primary under.
func MasterName(c *engines.Cluster) string { return c.Service }

// SentinelAddrs are the Sentinels' TCP addresses.
func SentinelAddrs(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = net.JoinHostPort(m.Addr.String(), strconv.Itoa(SentinelPort))
	}
	return out
}

// FailoverOptions are go-redis options for NewFailoverClient, which asks the
// Sentinels for the current primary and follows failovers.
func FailoverOptions(c *engines.Cluster) *goredis.FailoverOptions {
	return &goredis.FailoverOptions{
		MasterName:      MasterName(c),
		SentinelAddrs:   SentinelAddrs(c),
		Protocol:        2,
		DisableIdentity: true, // CLIENT SETINFO is Redis 7.2+
		DialTimeout:     time.Second,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
	}
}

func redisName(m engines.Member) string    { return m.Name + ".redis" }
func sentinelName(m engines.Member) string { return m.Name + ".sentinel" }
func redisConf(m engines.Member) string    { return filepath.Join(m.DataDir, "redis.conf") }
func sentinelConf(m engines.Member) string { return filepath.Join(m.DataDir, "sentinel.conf") }

// sock is in DataDir unless that path is too long for a unix socket
// (108 bytes), then under /run keyed by a hash of DataDir, in a directory
// of redis's own (see galera's socketPath).
func sock(m engines.Member, what string) string {
	p := filepath.Join(m.DataDir, what+".sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(m.DataDir))
	return filepath.Join("/run/chaosloop/redis", hex.EncodeToString(h[:8])+"."+what+".sock")
}

func prepare(ctx context.Context, m engines.Member) error {
	for _, d := range []string{m.DataDir, m.LogDir, filepath.Dir(sock(m, "redis"))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, "chown", "-R", runUser+":"+runUser, m.DataDir, m.LogDir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v: %s", m.DataDir, err, out)
	}
	if d := filepath.Dir(sock(m, "redis")); d != m.DataDir {
		if out, err := exec.CommandContext(ctx, "chown", runUser+":"+runUser, d).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", d, err, out)
		}
	}
	// A parent directory redis cannot traverse (e.g. a 0700 temp dir) makes
	// redis fail later with a less clear error; say so now.
	if out, err := exec.CommandContext(ctx, "setpriv", "--reuid="+runUser, "--regid="+runUser, "--init-groups", "--",
		"test", "-w", m.DataDir).CombinedOutput(); err != nil {
		return fmt.Errorf("user %s cannot write %s (check the parent directories' permissions): %v %s", runUser, m.DataDir, err, out)
	}
	return nil
}

// writeRedisConf writes the member's config; primary < 0 makes it a
// primary, else a replica of that member. Sentinel rewrites replicaof in this
// file on failovers; chaosloop rewrites the whole file on each start.
func writeRedisConf(c *engines.Cluster, m engines.Member, primary int) error {
	a := m.Addr.String()
	var b strings.Builder
	fmt.Fprintf(&b, `# written by chaosloop; rewritten on every start
bind %[1]s
bind-source-addr %[1]s
port %[2]d
protected-mode no
unixsocket %[3]s
unixsocketperm 700
daemonize no
dir %[4]s
logfile %[5]s
appendonly yes
appendfsync everysec
save ""
replica-announce-ip %[1]s
replica-announce-port %[2]d
replica-priority %[6]d
`, a, Port, sock(m, "redis"), m.DataDir, filepath.Join(m.LogDir, "redis.log"), replicaPriority)
	if primary >= 0 && primary != m.Index {
		fmt.Fprintf(&b, "replicaof %s %d\n", c.Members[primary].Addr, Port)
	}
	return writeOwned(redisConf(m), b.String())
}

// writeSentinelConf writes the Sentinel's initial config. Sentinel keeps its
// own state (its id, epochs, known peers and the current primary) in this
// file, so it is written only when missing.
func writeSentinelConf(c *engines.Cluster, m engines.Member, primary int) error {
	if _, err := os.Stat(sentinelConf(m)); err == nil {
		return nil
	}
	a := m.Addr.String()
	name := MasterName(c)
	conf := fmt.Sprintf(`# written by chaosloop once; Sentinel rewrites it
bind %[1]s
port %[2]d
protected-mode no
unixsocket %[3]s
unixsocketperm 700
daemonize no
dir %[4]s
logfile %[5]s
sentinel announce-ip %[1]s
sentinel announce-port %[2]d
sentinel resolve-hostnames no
sentinel monitor %[6]s %[7]s %[8]d %[9]d
sentinel down-after-milliseconds %[6]s %[10]d
sentinel failover-timeout %[6]s %[11]d
sentinel parallel-syncs %[6]s 1
`, a, SentinelPort, sock(m, "sentinel"), m.DataDir, filepath.Join(m.LogDir, "sentinel.log"),
		name, c.Members[primary].Addr, Port, len(c.Members)/2+1, DownAfter.Milliseconds(), FailoverTimeout.Milliseconds())
	return writeOwned(sentinelConf(m), conf)
}

func writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Lchown(path, userID(), groupID())
}

func userID() int  { return lookupID("-u") }
func groupID() int { return lookupID("-g") }

func lookupID(flag string) int {
	out, err := exec.Command("id", flag, runUser).Output()
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return -1
	}
	return n
}

func alive(c *engines.Cluster, name string) bool {
	r, err := proc.Load(c.StateDir, name)
	return err == nil && r.Alive()
}

func (e *Engine) startProc(c *engines.Cluster, m engines.Member, name, conf string, extra ...string) error {
	e.log.Info("starting", "process", name)
	_, err := proc.Start(c.StateDir, proc.Spec{
		Name:   name,
		NetNS:  m.NetNS,
		User:   runUser,
		Cgroup: m.Cgroup,
		Path:   redisServer,
		Args:   append([]string{conf}, extra...),
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, strings.TrimPrefix(filepath.Ext(name), ".")+".out"),
	})
	return err
}

func client(path string) *goredis.Client { return clientTimeout(path, statusWait) }

func clientTimeout(path string, d time.Duration) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Network: "unix", Addr: path, Protocol: 2, DisableIdentity: true,
		DialTimeout: d, ReadTimeout: d, WriteTimeout: d,
		PoolSize: 1, MaxRetries: -1,
	})
}

func sentinelClient(m engines.Member, d time.Duration) *goredis.SentinelClient {
	return goredis.NewSentinelClient(&goredis.Options{
		Network: "unix", Addr: sock(m, "sentinel"), Protocol: 2, DisableIdentity: true,
		DialTimeout: d, ReadTimeout: d, WriteTimeout: d,
		PoolSize: 1, MaxRetries: -1,
	})
}

// replInfo is a redis-server's INFO replication.
type replInfo struct {
	Role       string // master, slave
	MasterHost string
	LinkUp     bool
	Replicas   int
	Offset     int64
}

func info(ctx context.Context, m engines.Member) (replInfo, error) {
	cl := client(sock(m, "redis"))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	s, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return replInfo{}, err
	}
	var r replInfo
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		switch k {
		case "role":
			r.Role = v
		case "master_host":
			r.MasterHost = v
		case "master_link_status":
			r.LinkUp = v == "up"
		case "connected_slaves":
			r.Replicas, _ = strconv.Atoi(v)
		case "master_repl_offset":
			r.Offset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r, nil
}

// sentinelView is what one Sentinel says.
type sentinelView struct {
	Primary string // address of the primary
	// Peers and Replicas it knows and does not consider down.
	Peers, Replicas []string
}

func sentinel(ctx context.Context, c *engines.Cluster, m engines.Member, full bool) (sentinelView, error) {
	sc := sentinelClient(m, statusWait)
	defer sc.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	var v sentinelView
	addr, err := sc.GetMasterAddrByName(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	if len(addr) > 0 {
		v.Primary = addr[0]
	}
	if !full {
		return v, nil
	}
	up := func(ms []map[string]string) []string {
		var out []string
		for _, x := range ms {
			f := x["flags"]
			if !strings.Contains(f, "s_down") && !strings.Contains(f, "disconnected") {
				out = append(out, x["ip"])
			}
		}
		return out
	}
	peers, err := sc.Sentinels(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	reps, err := sc.Replicas(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	v.Peers, v.Replicas = up(peers), up(reps)
	return v, nil
}

// currentPrimary is the member the answering Sentinels name most (ok false
// when none answers). Without Sentinels, the newest Sentinel config says.
func (e *Engine) currentPrimary(ctx context.Context, c *engines.Cluster) (int, bool) {
	votes := map[string]int{}
	for _, m := range c.Members {
		if !alive(c, sentinelName(m)) {
			continue
		}
		if v, err := sentinel(ctx, c, m, false); err == nil && v.Primary != "" {
			votes[v.Primary]++
		}
	}
	best, n := "", 0
	for a, k := range votes {
		if k > n || (k == n && a < best) {
			best, n = a, k
		}
	}
	for i, m := range c.Members {
		if best != "" && m.Addr.String() == best {
			return i, true
		}
	}
	return -1, false
}

// configuredPrimary reads the primary from the Sentinel configs on disk
// (the one with the highest config epoch), or member 0 when there are none.
func configuredPrimary(c *engines.Cluster) int {
	primary, epoch := 0, int64(-1)
	for _, m := range c.Members {
		b, err := os.ReadFile(sentinelConf(m))
		if err != nil {
			continue
		}
		addr, ep := "", int64(0)
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == "sentinel" && f[1] == "monitor" && f[2] == MasterName(c) {
				addr = f[3]
			}
			if len(f) >= 4 && f[0] == "sentinel" && f[1] == "config-epoch" && f[2] == MasterName(c) {
				ep, _ = strconv.ParseInt(f[3], 10, 64)
			}
		}
		for i, p := range c.Members {
			if p.Addr.String() == addr && ep > epoch {
				primary, epoch = i, ep
			}
		}
	}
	return primary
}

// Start starts every member's redis-server and Sentinel and returns when
// the primary (member 0 for a new cluster) has all replicas linked and every
// Sentinel names it and sees the other Sentinels and the replicas. It is
// idempotent, and restarts a stopped cluster with the primary it had.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	t0 := time.Now()
	for _, m := range c.Members {
		if err := prepare(ctx, m); err != nil {
			return err
		}
	}
	primary, ok := e.currentPrimary(ctx, c)
	if !ok {
		primary = configuredPrimary(c)
	}
	order := []int{primary}
	for i := range c.Members {
		if i != primary {
			order = append(order, i)
		}
	}
	for _, i := range order {
		m := c.Members[i]
		if alive(c, redisName(m)) {
			continue
		}
		if err := writeRedisConf(c, m, primary); err != nil {
			return err
		}
		if err := e.startProc(c, m, redisName(m), redisConf(m)); err != nil {
			return err
		}
	}
	// Sentinels learn replicas from the primary's INFO, asked at once and
	// then only every 10 s: let the replicas link first so that the first
	// INFO lists them (saves ~10 s; a timeout here is not an error).
	_ = engines.WaitFor(ctx, 10*time.Second, 100*time.Millisecond, "replicas linked", func(ctx context.Context) error {
		r, err := info(ctx, c.Members[primary])
		if err != nil {
			return err
		}
		if r.Replicas < len(c.Members)-1 {
			return fmt.Errorf("%d replicas", r.Replicas)
		}
		return nil
	})
	for _, i := range order {
		m := c.Members[i]
		if alive(c, sentinelName(m)) {
			continue
		}
		if err := writeSentinelConf(c, m, primary); err != nil {
			return err
		}
		if err := e.startProc(c, m, sentinelName(m), sentinelConf(m), "--sentinel"); err != nil {
			return err
		}
	}
	if err := e.waitHealthy(ctx, c); err != nil {
		return err
	}
	e.log.Info("redis cluster up", "service", c.Service, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// waitHealthy waits until every member is up and consistent with the
// primary the Sentinels agree on, and every Sentinel knows the others.
func (e *Engine) waitHealthy(ctx context.Context, c *engines.Cluster) error {
	return waitRunning(ctx, c, c.Members, "redis "+c.Service+" healthy", func(ctx context.Context) error {
		_, err := e.healthy(ctx, c)
		return err
	}, waitTimeout)
}

// healthy returns the primary when every member's redis-server and Sentinel
// run, every Sentinel names that primary and knows the other Sentinels and
// the replicas, and every other member is its replica with the link up;
// else an error saying what is not so.
func (e *Engine) healthy(ctx context.Context, c *engines.Cluster) (int, error) {
	for _, m := range c.Members {
		for _, name := range []string{redisName(m), sentinelName(m)} {
			if !alive(c, name) {
				return -1, fmt.Errorf("%s is not running", name)
			}
		}
	}
	n := len(c.Members)
	p, ok := e.currentPrimary(ctx, c)
	if !ok {
		return -1, errors.New("no Sentinel names a primary")
	}
	pa := c.Members[p].Addr.String()
	for i, m := range c.Members {
		r, err := info(ctx, m)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", m.Name, err)
		}
		if i == p && (r.Role != "master" || r.Replicas < n-1) {
			return -1, fmt.Errorf("primary %s: %+v", m.Name, r)
		}
		if i != p && (r.Role != "slave" || r.MasterHost != pa || !r.LinkUp) {
			return -1, fmt.Errorf("replica %s: %+v", m.Name, r)
		}
		v, err := sentinel(ctx, c, m, true)
		if err != nil {
			return -1, fmt.Errorf("sentinel %s: %w", m.Name, err)
		}
		if v.Primary != pa || !knowsOthers(c, i, v.Peers) || !knowsOthers(c, p, v.Replicas) {
			return -1, fmt.Errorf("sentinel %s: %+v", m.Name, v)
		}
	}
	return p, nil
}

// waitRunning waits for cond; it gives up at once if a redis-server or
// Sentinel of members ends (a bad config, a port in use).
func waitRunning(ctx context.Context, c *engines.Cluster, members []engines.Member, what string, cond func(context.Context) error, timeout time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := engines.WaitFor(ctx, timeout, 250*time.Millisecond, what, func(ctx context.Context) error {
		for _, m := range members {
			for _, name := range []string{redisName(m), sentinelName(m)} {
				if !alive(c, name) {
					err := fmt.Errorf("%s is not running (see %s)", name, m.LogDir)
					cancel(err)
					return err
				}
			}
		}
		return cond(ctx)
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, cause)
	}
	return err
}

// knowsOthers: addrs holds the address of every member but self.
func knowsOthers(c *engines.Cluster, self int, addrs []string) bool {
	for i, m := range c.Members {
		if i == self {
			continue
		}
		found := false
		for _, a := range addrs {
			found = found || a == m.Addr.String()
		}
		if !found {
			return false
		}
	}
	return true
}

// StartMember (re)starts member i's redis-server and Sentinel after a kill or
// power-off (or with its DataDir wiped). Its redis-server comes back as a
// replica of the primary the running Sentinels name (as primary only if they
// still name it); it returns once it is linked and its Sentinel agrees.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	if err := prepare(ctx, m); err != nil {
		return err
	}
	primary, ok := e.currentPrimary(ctx, c)
	if !ok {
		primary = configuredPrimary(c)
	}
	if !alive(c, redisName(m)) {
		if err := writeRedisConf(c, m, primary); err != nil {
			return err
		}
		if err := e.startProc(c, m, redisName(m), redisConf(m)); err != nil {
			return err
		}
	}
	if !alive(c, sentinelName(m)) {
		if err := writeSentinelConf(c, m, primary); err != nil {
			return err
		}
		if err := e.startProc(c, m, sentinelName(m), sentinelConf(m), "--sentinel"); err != nil {
			return err
		}
	}
	return waitRunning(ctx, c, []engines.Member{m}, m.Name+" rejoined", func(ctx context.Context) error {
		p, ok := e.currentPrimary(ctx, c)
		if !ok {
			return errors.New("no Sentinel names a primary")
		}
		r, err := info(ctx, m)
		if err != nil {
			return err
		}
		if p == i && r.Role != "master" || p != i && (r.Role != "slave" || r.MasterHost != c.Members[p].Addr.String() || !r.LinkUp) {
			return fmt.Errorf("%s: %+v (primary per Sentinel: %s)", m.Name, r, c.Members[p].Name)
		}
		v, err := sentinel(ctx, c, m, false)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", m.Name, err)
		}
		if v.Primary != c.Members[p].Addr.String() {
			return fmt.Errorf("sentinel %s names %s", m.Name, v.Primary)
		}
		return nil
	}, waitTimeout)
}

func stop(ctx context.Context, c *engines.Cluster, name string) error {
	return proc.StopRecorded(ctx, c.StateDir, name, stopGrace)
}

// StopMember stops member i's Sentinel and redis-server (SIGTERM: redis
// flushes its AOF and exits).
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return errors.Join(stop(ctx, c, sentinelName(m)), stop(ctx, c, redisName(m)))
}

// Stop stops all Sentinels first (so that stopping the primary starts no
// failover), then all redis-servers.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	var errs []error
	for _, m := range c.Members {
		errs = append(errs, stop(ctx, c, sentinelName(m)))
	}
	for _, m := range c.Members {
		errs = append(errs, stop(ctx, c, redisName(m)))
	}
	return errors.Join(errs...)
}

// Status samples every member's redis-server and Sentinel over their
// sockets. A member is Healthy when it is the primary the Sentinels name
// (primary) or is linked to it (replica). Writable: that primary is up.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	s := engines.Status{Engine: "redis", Members: make([]engines.MemberStatus, len(c.Members))}
	type probe struct {
		redisUp, sentUp bool
		info            replInfo
		infoErr, sErr   error
		view            sentinelView
	}
	probes := make([]probe, len(c.Members))
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() {
			p := &probes[i]
			if p.redisUp = alive(c, redisName(m)); p.redisUp {
				p.info, p.infoErr = info(ctx, m)
			}
			if p.sentUp = alive(c, sentinelName(m)); p.sentUp {
				p.view, p.sErr = sentinel(ctx, c, m, false)
			}
		})
	}
	wg.Wait()
	votes := map[string]int{}
	for _, p := range probes {
		if p.sentUp && p.sErr == nil && p.view.Primary != "" {
			votes[p.view.Primary]++
		}
	}
	agreed, n := "", 0
	for a, k := range votes {
		if k > n || (k == n && a < agreed) {
			agreed, n = a, k
		}
	}
	for i, m := range c.Members {
		p := probes[i]
		ms := engines.MemberStatus{Index: i, Name: m.Name}
		var d []string
		switch {
		case !p.redisUp:
			d = append(d, "redis not running")
		case p.infoErr != nil:
			d = append(d, "redis not answering: "+p.infoErr.Error())
			ms.TimedOut = lab.IsTimeout(p.infoErr)
		default:
			ms.Up = true
			r := p.info
			if r.Role == "master" {
				ms.Role = "primary"
				ms.Healthy = agreed == "" || agreed == m.Addr.String()
				d = append(d, fmt.Sprintf("role=primary replicas=%d offset=%d", r.Replicas, r.Offset))
				if ms.Healthy {
					s.Writable = true
				}
			} else {
				ms.Role = "replica"
				link := "down"
				if r.LinkUp {
					link = "up"
				}
				ms.Healthy = r.LinkUp && (agreed == "" || agreed == r.MasterHost)
				d = append(d, fmt.Sprintf("role=replica master=%s link=%s offset=%d", r.MasterHost, link, r.Offset))
			}
		}
		switch {
		case !p.sentUp:
			d = append(d, "sentinel not running")
		case p.sErr != nil:
			d = append(d, "sentinel not answering: "+p.sErr.Error())
		default:
			d = append(d, "sentinel names "+p.view.Primary)
		}
		ms.Detail = strings.Join(d, "; ")
		s.Members[i] = ms
	}
	return s, nil
}
