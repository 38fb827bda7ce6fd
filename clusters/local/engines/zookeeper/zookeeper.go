// Package zookeeper runs a real ZooKeeper 3.8 ensemble (Debian's zookeeper
// package, on Java 17) as a lab engine: one server per engines.Member, in
// the member's network namespace and cgroup. It observes the ensemble with
// the four-letter word srvr, which needs no client library.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

const (
	// Debian 12's package, pinned so every lab runs the same ZooKeeper.
	pkg = "zookeeper=3.8.0-11+deb12u2"

	java = "/usr/bin/java"
	// zookeeper.jar's manifest names its dependencies; slf4j-simple makes
	// the server log to stderr (the member's log file) without log4j setup.
	classpath = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"

	// Heap size: lab-facts measured ~63 MB RSS per server with it.
	heap = "128m"

	// A member that has not answered a status question within this is not
	// Up. Not shorter: on the 2-core lab under load, answers took over
	// 300 ms (a Redis primary at 600 transfers/s was sampled "not
	// answering", i.e. read-only, with no fault); the runner's probes
	// overlap, so a slow answer does not thin the sampling.
	StatusTimeout = time.Second
	stopGrace     = 10 * time.Second
	startTimeout  = 90 * time.Second

	// notServing is what a server out of quorum answers to srvr.
	notServing = "not currently serving requests"
)

// A member's ports (plus its PortOffset): clients', its followers' (on
// the leader) and leader election's. The AdminServer (8080) is off.
const (
	ClientPort   = 2181
	PeerPort     = 2888
	ElectionPort = 3888
)

// Packages are the pinned Debian packages Install installs.
var Packages = []string{pkg}

// Engine starts, stops and observes ZooKeeper ensembles.
type Engine struct {
	log *slog.Logger
}

// New returns an Engine that logs to log.
func New(log *slog.Logger) *Engine {
	return &Engine{log: log}
}

// Install installs ZooKeeper (and with it a Java runtime) from Debian.
func (e *Engine) Install(ctx context.Context) error {
	return install.Apt(ctx, e.log, Packages...)
}

var versionRE = regexp.MustCompile(`(\d+\.\d+\.\d+)`)

// Version reports the installed ZooKeeper's version ("3.8.0").
func (e *Engine) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, java, "-XX:TieredStopAtLevel=1", "-cp", classpath, "org.apache.zookeeper.version.VersionInfoMain").Output()
	if err != nil {
		return "", fmt.Errorf("zookeeper version: %w", err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("zookeeper version: unexpected output %q", out)
	}
	return string(m[1]), nil
}

// Endpoints returns the members' client endpoints ("addr:2181", plus the
// port offset), as a ZooKeeper connect string lists them.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = clientEndpoint(m)
	}
	return out
}

func clientEndpoint(m engines.Member) string {
	return m.AddrPort(ClientPort).String()
}

// ProcessName names member m's server process (the pod that runs it on a
// cluster is named after it).
func ProcessName(m engines.Member) string { return m.Name + ".zookeeper" }

// myid numbers servers from 1, in member order.
func myid(i int) int { return i + 1 }

func running(ctx context.Context, c *engines.Cluster, m engines.Member) bool {
	return c.Launch().Alive(ctx, ProcessName(m))
}

// Zab timing (zoo.cfg): a follower more than SyncLimit ticks behind or
// silent is dropped by the leader, and a leader that loses its quorum of
// followers that way steps down.
const (
	TickTime  = 2 * time.Second
	InitLimit = 10
	SyncLimit = 5
)

// FailoverBudget: a lost leader or follower is noticed within tickTime ×
// syncLimit, plus margin (the election that follows takes ~1 s of it).
func FailoverBudget() engines.Budget {
	return engines.WithMargin(TickTime*SyncLimit, fmt.Sprintf("tickTime %s × syncLimit %d = %s", TickTime, SyncLimit, TickTime*SyncLimit))
}

// config is the member's zoo.cfg: a static ensemble of all members.
func config(c *engines.Cluster, i int) string {
	m := c.Members[i]
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by chaosloop at every start of %s.
tickTime=%d
initLimit=%d
syncLimit=%d
dataDir=%s
clientPort=%d
clientPortAddress=%s
# The admin server's port 8080 would collide with other engines.
admin.enableServer=false
4lw.commands.whitelist=srvr,mntr,ruok,stat,conf,isro
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
`, m.Name, TickTime.Milliseconds(), InitLimit, SyncLimit, m.DataDir, m.Port(ClientPort), clientBind(m))
	for j, o := range c.Members {
		// Quorum and election ports bind this address only, so the
		// members of several services can share a host.
		fmt.Fprintf(&b, "server.%d=%s:%d:%d\n", myid(j), bracket(o.Addr), o.Port(PeerPort), o.Port(ElectionPort))
	}
	return b.String()
}

// clientBind is the address the client port binds. ZooKeeper binds one:
// a member that takes its clients on loopback too (a cluster's
// port-forward lands there) binds them all.
func clientBind(m engines.Member) netip.Addr {
	switch {
	case !m.ListenLoopback:
		return m.Addr
	case m.Addr.Is4():
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func bracket(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// Start starts every member that is not running and returns once all of
// them serve requests under one leader.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	if len(c.Members) == 0 {
		return fmt.Errorf("zookeeper %s: no members", c.Service)
	}
	began := time.Now()
	for i := range c.Members {
		if err := e.StartMember(ctx, c, i); err != nil {
			return err
		}
	}
	if err := e.waitHealthy(ctx, c); err != nil {
		return err
	}
	e.log.Info("zookeeper ensemble healthy", "service", c.Service, "members", len(c.Members), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// StartMember (re)starts member i. A member whose data was wiped needs
// nothing special: with its myid rewritten it syncs a snapshot from the
// leader, as a replaced ZooKeeper server does.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("zookeeper %s: no member %d", c.Service, i)
	}
	m := c.Members[i]
	if running(ctx, c, m) {
		return nil
	}
	cfg, err := prepare(ctx, c, i)
	if err != nil {
		return fmt.Errorf("zookeeper %s: %s's files: %w", c.Service, m.Name, err)
	}
	where, err := c.Launch().Start(ctx, m, spec(m, cfg))
	if err != nil {
		return fmt.Errorf("zookeeper %s: start %s: %w", c.Service, m.Name, err)
	}
	e.log.Info("zookeeper member started", "service", c.Service, "member", m.Name, "process", where, "myid", myid(i))
	return nil
}

// prepare writes member i's zoo.cfg and myid in its data directory, on
// its node, and returns the configuration's path.
func prepare(ctx context.Context, c *engines.Cluster, i int) (string, error) {
	m, fs := c.Members[i], c.FS()
	for _, d := range []string{m.DataDir, m.LogDir} {
		if err := fs.MkdirAll(ctx, m, d, 0o755); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(m.DataDir, "zoo.cfg")
	if err := fs.WriteFile(ctx, m, cfg, []byte(config(c, i)), 0o644); err != nil {
		return "", err
	}
	return cfg, fs.WriteFile(ctx, m, filepath.Join(m.DataDir, "myid"), []byte(strconv.Itoa(myid(i))+"\n"), 0o644)
}

// spec is member m's server process, with its configuration cfg. The
// paths are Debian's package's, on the lab's hosts and in the engine's
// image alike.
func spec(m engines.Member, cfg string) proc.Spec {
	args := []string{
		"-Xmx" + heap,
		// Serial GC and C1 only: less CPU on the lab's few shared cores.
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		// No hsperfdata files in the shared /tmp.
		"-XX:-UsePerfData",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
		"-Dzookeeper.log.dir=" + m.LogDir,
	}
	if m.Addr.Is4() {
		args = append(args, "-Djava.net.preferIPv4Stack=true")
	}
	args = append(args, "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg)
	return proc.Spec{
		Name:   ProcessName(m),
		NetNS:  m.NetNS,
		Cgroup: m.Cgroup,
		Path:   java,
		Args:   args,
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, "zookeeper.log"),
	}
}

// StopMember stops member i (SIGTERM, then SIGKILL after a grace period).
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return c.Launch().Stop(ctx, ProcessName(m), stopGrace)
}

// Stop stops every member.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopAll(c, func(i int) error { return e.StopMember(ctx, c, i) })
}

// Status asks every member, in parallel and within StatusTimeout, for srvr.
// A member that answers is Up; one that reports a mode (it serves
// requests, so it is in quorum) is Healthy. Writable: a serving leader and
// a serving majority.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	st := engines.Status{Engine: "zookeeper", Members: make([]engines.MemberStatus, len(c.Members))}
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	versions := make([]string, len(c.Members))
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Members[i], versions[i] = memberStatus(ctx, c, m)
			st.Members[i].Index = i
		}()
	}
	wg.Wait()
	serving, leader := 0, false
	for i, m := range st.Members {
		if versions[i] != "" {
			st.Version = versions[i]
		}
		if m.Healthy {
			serving++
			if m.Role == "leader" {
				leader = true
			}
		}
	}
	st.Writable = leader && serving > len(c.Members)/2
	return st, nil
}

func memberStatus(ctx context.Context, c *engines.Cluster, m engines.Member) (ms engines.MemberStatus, version string) {
	ms.Name = m.Name
	if c.NotRunning(ctx, &ms, ProcessName(m)) {
		return
	}
	out, err := fourLetter(ctx, c.Dialer(), clientEndpoint(m), "srvr")
	if err != nil {
		ms.Detail = "srvr: " + err.Error()
		ms.TimedOut = lab.IsTimeout(err)
		return
	}
	ms.Up = true
	if strings.Contains(out, notServing) {
		ms.Detail = strings.TrimSpace(out)
		return
	}
	fields := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	mode := fields["Mode"]
	switch mode {
	case "leader", "standalone":
		ms.Role = "leader"
	case "follower", "observer":
		ms.Role = mode
	case "":
		ms.Detail = "srvr: no mode in " + strconv.Quote(out)
		return
	default:
		ms.Role = mode
	}
	ms.Healthy = true
	ms.Detail = fmt.Sprintf("mode %s, zxid %s, %s znodes", mode, fields["Zxid"], fields["Node count"])
	if v := versionRE.FindString(fields["Zookeeper version"]); v != "" {
		version = v
	}
	return
}

// fourLetter sends a four-letter word and returns the server's whole answer.
func fourLetter(ctx context.Context, dial engines.DialFunc, endpoint, cmd string) (string, error) {
	conn, err := dial(ctx, "tcp", endpoint)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("empty answer")
	}
	return string(b), nil
}

// waitHealthy waits until every member serves under exactly one leader.
func (e *Engine) waitHealthy(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, startTimeout, 200*time.Millisecond, "zookeeper "+c.Service+" healthy", func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		return st.OneLeader()
	})
}
