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
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
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
	return install.Apt(ctx, e.log, Packages...)
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
		out[i] = m.AddrPort(Port).String()
	}
	return out
}

// MasterName is the name the Sentinels monitor the primary under.
func MasterName(c *engines.Cluster) string { return c.Service }

// SentinelAddrs are the Sentinels' TCP addresses.
func SentinelAddrs(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.AddrPort(SentinelPort).String()
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
