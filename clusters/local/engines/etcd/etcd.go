// Package etcd runs a real etcd 3.4 cluster (Debian's etcd-server) as a lab
// engine: one member per engines.Member, in the member's network namespace
// and cgroup, and reports its raft state through the etcd Go client.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// A member's ports (plus its PortOffset): clients', and its peers'.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

const (
	// Debian 12 package versions, pinned so every lab runs the same etcd.
	serverPkg = "etcd-server=3.4.23-4+b4"
	clientPkg = "etcd-client=3.4.23-4+b4"

	binary = "/usr/bin/etcd"

	// A member that has not answered a status question within this is not
	// Up. Not shorter: on the 2-core lab under load, answers took over
	// 300 ms (a Redis primary at 600 transfers/s was sampled "not
	// answering", i.e. read-only, with no fault); the runner's probes
	// overlap, so a slow answer does not thin the sampling.
	StatusTimeout = time.Second
	stopGrace     = 10 * time.Second
	startTimeout  = 60 * time.Second
	adminTimeout  = 5 * time.Second
	rejoinTimeout = 30 * time.Second

	// healthKey is read linearizably to prove a member is in quorum.
	healthKey = "chaosloop/health"
)

// Packages are the pinned Debian packages Install installs.
var Packages = []string{serverPkg, clientPkg}

// Engine starts, stops and observes etcd clusters. It keeps one client
// connection per member endpoint so that Status is cheap; Close ends them.
type Engine struct {
	log *slog.Logger

	mu      sync.Mutex
	clients map[string]*clientv3.Client
}

// New returns an Engine that logs to log.
func New(log *slog.Logger) *Engine {
	return &Engine{log: log, clients: map[string]*clientv3.Client{}}
}

// Install installs etcd from Debian (etcdctl too, for humans debugging a lab).
func (e *Engine) Install(ctx context.Context) error {
	return install.Apt(ctx, e.log, Packages...)
}

var versionRE = regexp.MustCompile(`etcd Version:\s*(\S+)`)

// Version reports the installed etcd server's version ("3.4.23").
func (e *Engine) Version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("etcd --version: %w", err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("etcd --version: unexpected output %q", out)
	}
	return string(m[1]), nil
}

// Endpoints returns the members' client endpoints ("addr:2379").
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

func peerURL(m engines.Member) string {
	return "http://" + m.AddrPort(PeerPort).String()
}

func clientURL(m engines.Member) string {
	return "http://" + clientEndpoint(m)
}

// listenClientURLs are where the member takes its clients' connections:
// its address, and loopback when it must (Member.ListenLoopback).
func listenClientURLs(m engines.Member) string {
	urls := clientURL(m)
	if m.ListenLoopback {
		urls += ",http://" + netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), m.Port(ClientPort)).String()
	}
	return urls
}

// ProcessName names member m's etcd process (the pod that runs it on a
// cluster is named after it).
func ProcessName(m engines.Member) string { return m.Name + ".etcd" }

// hasData reports whether the member's data directory holds a member (WAL
// and snapshot); without one it must be bootstrapped or added anew.
func hasData(ctx context.Context, c *engines.Cluster, m engines.Member) (bool, error) {
	ok, err := c.FS().Exists(ctx, m, filepath.Join(m.DataDir, "member"))
	if err != nil {
		return false, fmt.Errorf("etcd %s: does %s have data: %w", c.Service, m.Name, err)
	}
	return ok, nil
}

// withData says which members have data.
func withData(ctx context.Context, c *engines.Cluster) ([]bool, error) {
	has := make([]bool, len(c.Members))
	for i, m := range c.Members {
		var err error
		if has[i], err = hasData(ctx, c, m); err != nil {
			return nil, err
		}
	}
	return has, nil
}

func running(ctx context.Context, c *engines.Cluster, m engines.Member) bool {
	return c.Launch().Alive(ctx, ProcessName(m))
}

// Start starts every member that is not running and returns once all of
// them are healthy under one leader. A fresh cluster is bootstrapped; on a
// cluster that has data, members whose data was wiped rejoin it.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	if len(c.Members) == 0 {
		return fmt.Errorf("etcd %s: no members", c.Service)
	}
	has, err := withData(ctx, c)
	if err != nil {
		return err
	}
	fresh := !slices.Contains(has, true)
	began := time.Now()
	var wiped []int
	for i, m := range c.Members {
		if running(ctx, c, m) {
			continue
		}
		if !fresh && !has[i] {
			// Rejoining needs the others in quorum first.
			wiped = append(wiped, i)
			continue
		}
		if err := e.spawn(ctx, c, m, "new", initialCluster(c.Members)); err != nil {
			return err
		}
	}
	if len(wiped) > 0 {
		if err := e.waitWritable(ctx, c); err != nil {
			return err
		}
		for _, i := range wiped {
			if err := e.rejoin(ctx, c, i); err != nil {
				return err
			}
		}
	}
	if err := e.waitHealthy(ctx, c); err != nil {
		return err
	}
	e.log.Info("etcd cluster healthy", "service", c.Service, "members", len(c.Members), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// StartMember (re)starts member i. A member whose data directory was wiped
// is removed from the cluster and added again as a new member, as an
// operator replacing a failed etcd member would.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("etcd %s: no member %d", c.Service, i)
	}
	m := c.Members[i]
	if running(ctx, c, m) {
		return nil
	}
	// Its own data first: a member that has some restarts without asking
	// the others' nodes (one of them may be cut off).
	has, err := hasData(ctx, c, m)
	if err != nil {
		return err
	}
	if has {
		// The initial-cluster flags are ignored once a member has data.
		return e.spawn(ctx, c, m, "existing", initialCluster(c.Members))
	}
	othersHaveData := false
	for j, o := range c.Members {
		if j == i {
			continue
		}
		if othersHaveData, err = hasData(ctx, c, o); err != nil {
			return err
		}
		if othersHaveData {
			break
		}
	}
	if !othersHaveData {
		// Nothing to rejoin: this member is part of a fresh bootstrap.
		return e.spawn(ctx, c, m, "new", initialCluster(c.Members))
	}
	return e.rejoin(ctx, c, i)
}

// rejoin replaces member i (whose data is gone) in the running cluster:
// member remove of its old identity, member add, start as "existing".
func (e *Engine) rejoin(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	var eps []string
	for j, o := range c.Members {
		if j != i {
			eps = append(eps, clientEndpoint(o))
		}
	}
	cli, err := NewClient(eps, c.Dialer())
	if err != nil {
		return err
	}
	defer cli.Close()
	// etcd refuses reconfiguration ("unhealthy cluster") until every voting
	// member has been connected for 5 s, so a rejoin right after another
	// member restarted waits for that.
	var add *clientv3.MemberAddResponse
	err = engines.WaitFor(ctx, rejoinTimeout, 500*time.Millisecond, "etcd "+c.Service+" rejoin "+m.Name, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		list, err := cli.MemberList(actx)
		if err != nil {
			return fmt.Errorf("member list: %w", err)
		}
		for _, mem := range list.Members {
			if mem.Name == m.Name || slices.Contains(mem.PeerURLs, peerURL(m)) {
				e.log.Info("etcd: removing wiped member", "service", c.Service, "member", m.Name, "id", fmt.Sprintf("%x", mem.ID))
				if _, err := cli.MemberRemove(actx, mem.ID); err != nil {
					return fmt.Errorf("member remove: %w", err)
				}
			}
		}
		add, err = cli.MemberAdd(actx, []string{peerURL(m)})
		if err != nil {
			return fmt.Errorf("member add: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// As etcdctl member add prints it: the cluster's membership, with the
	// new member (which has no name until it starts) named here. etcd checks
	// the peer URLs against the cluster's, so every member must be listed.
	var parts []string
	for _, mem := range add.Members {
		name := mem.Name
		if mem.ID == add.Member.ID {
			name = m.Name
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	e.log.Info("etcd: member re-added", "service", c.Service, "member", m.Name, "id", fmt.Sprintf("%x", add.Member.ID))
	return e.spawn(ctx, c, m, "existing", strings.Join(parts, ","))
}

// Raft timing: K3S's, as its embedded etcd runs (k3s pkg/etcd: heartbeat
// 500 ms, election timeout 5 s), since an etcd service is the K3S
// datastore; the failover budget follows them. A follower that hears no
// heartbeat for ElectionTimeout (randomised up to twice that) campaigns,
// and a leader that hears from no quorum for as long steps down: with
// etcd's own 1 s, a lab machine's scheduling stall of a second (a rack
// powering back on beside it) made a leader without a fault.
const (
	HeartbeatInterval = 500 * time.Millisecond
	ElectionTimeout   = 5 * time.Second
)

// FailoverBudget: a leader lost is replaced within 2 × ElectionTimeout
// (the randomised election timeout), plus margin.
func FailoverBudget() engines.Budget {
	return engines.WithMargin(2*ElectionTimeout, fmt.Sprintf("etcd election timeout %s, randomised up to %s", ElectionTimeout, 2*ElectionTimeout))
}

func initialCluster(ms []engines.Member) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Name + "=" + peerURL(m)
	}
	return strings.Join(parts, ",")
}

func (e *Engine) spawn(ctx context.Context, c *engines.Cluster, m engines.Member, state, cluster string) error {
	if err := c.FS().MkdirAll(ctx, m, m.DataDir, 0o700); err != nil {
		return err
	}
	if err := c.FS().MkdirAll(ctx, m, m.LogDir, 0o755); err != nil {
		return err
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-peer-urls", peerURL(m),
		"--initial-advertise-peer-urls", peerURL(m),
		"--listen-client-urls", listenClientURLs(m),
		"--advertise-client-urls", clientURL(m),
		"--initial-cluster", cluster,
		"--initial-cluster-state", state,
		// The token keeps two lab clusters that share addresses apart.
		"--initial-cluster-token", c.Service,
		// Off by default in 3.4: without it a rejoining isolated member
		// forces an election with its inflated term.
		"--pre-vote=true",
		// The v2 store is what Patroni's reliable "etcd:" backend uses.
		"--enable-v2=true",
		"--heartbeat-interval", strconv.FormatInt(HeartbeatInterval.Milliseconds(), 10),
		"--election-timeout", strconv.FormatInt(ElectionTimeout.Milliseconds(), 10),
		"--logger", "zap",
		"--log-outputs", "stderr",
	}
	where, err := c.Launch().Start(ctx, m, proc.Spec{
		Name:   ProcessName(m),
		NetNS:  m.NetNS,
		Cgroup: m.Cgroup,
		Path:   binary,
		Args:   args,
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, "etcd.log"),
	})
	if err != nil {
		return fmt.Errorf("etcd %s: start %s: %w", c.Service, m.Name, err)
	}
	e.log.Info("etcd member started", "service", c.Service, "member", m.Name, "process", where, "state", state)
	return nil
}

// StopMember stops member i (SIGTERM, then SIGKILL after a grace period).
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return c.Launch().Stop(ctx, ProcessName(m), stopGrace)
}

// Stop stops every member and drops the Engine's connections to them.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	err := engines.StopAll(c, func(i int) error { return e.StopMember(ctx, c, i) })
	e.mu.Lock()
	for _, ep := range e.Endpoints(c) {
		if cli, ok := e.clients[ep]; ok {
			_ = cli.Close()
			delete(e.clients, ep)
		}
	}
	e.mu.Unlock()
	return err
}

// Close ends the Engine's client connections (not the members).
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for ep, cli := range e.clients {
		errs = append(errs, cli.Close())
		delete(e.clients, ep)
	}
	return errors.Join(errs...)
}
