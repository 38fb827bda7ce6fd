package redis

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func alive(ctx context.Context, c *engines.Cluster, name string) bool {
	return c.Launch().Alive(ctx, name)
}

func (e *Engine) startProc(ctx context.Context, c *engines.Cluster, m engines.Member, name, conf string, extra ...string) error {
	e.log.Info("starting", "process", name)
	_, err := c.Launch().Start(ctx, m, proc.Spec{
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

// configure writes the configuration of member i's processes that do
// not run (its redis-server's with primary, its Sentinel's when it has
// none yet) and gives its files to runUser, before they start.
func (e *Engine) configure(ctx context.Context, c *engines.Cluster, i, primary int) error {
	m := c.Members[i]
	redisUp, sentinelUp := alive(ctx, c, redisName(m)), alive(ctx, c, sentinelName(m))
	if redisUp && sentinelUp {
		return nil
	}
	if !redisUp {
		if err := writeRedisConf(ctx, c, m, primary); err != nil {
			return err
		}
	}
	if !sentinelUp {
		if err := writeSentinelConf(ctx, c, m, primary); err != nil {
			return err
		}
	}
	return own(ctx, c, m)
}

// Start starts every member's redis-server and Sentinel and returns when
// the primary (member 0 for a new cluster) has all replicas linked and every
// Sentinel names it and sees the other Sentinels and the replicas. It is
// idempotent, and restarts a stopped cluster with the primary it had.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	t0 := time.Now()
	for _, m := range c.Members {
		if err := prepare(ctx, c, m); err != nil {
			return err
		}
	}
	primary, ok := e.currentPrimary(ctx, c)
	if !ok {
		primary = configuredPrimary(ctx, c)
	}
	order := []int{primary}
	for i := range c.Members {
		if i != primary {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if err := e.configure(ctx, c, i, primary); err != nil {
			return err
		}
		m := c.Members[i]
		if alive(ctx, c, redisName(m)) {
			continue
		}
		if err := e.startProc(ctx, c, m, redisName(m), redisConf(m)); err != nil {
			return err
		}
	}
	// Sentinels learn replicas from the primary's INFO, asked at once and
	// then only every 10 s: let the replicas link first so that the first
	// INFO lists them (saves ~10 s; a timeout here is not an error).
	_ = engines.WaitFor(ctx, 10*time.Second, 100*time.Millisecond, "replicas linked", func(ctx context.Context) error {
		r, err := info(ctx, c, c.Members[primary])
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
		if alive(ctx, c, sentinelName(m)) {
			continue
		}
		if err := e.startProc(ctx, c, m, sentinelName(m), sentinelConf(m), "--sentinel"); err != nil {
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
			if !alive(ctx, c, name) {
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
		r, err := info(ctx, c, m)
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
				if !alive(ctx, c, name) {
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
	if err := prepare(ctx, c, m); err != nil {
		return err
	}
	primary, ok := e.currentPrimary(ctx, c)
	if !ok {
		primary = configuredPrimary(ctx, c)
	}
	if err := e.configure(ctx, c, i, primary); err != nil {
		return err
	}
	if !alive(ctx, c, redisName(m)) {
		if err := e.startProc(ctx, c, m, redisName(m), redisConf(m)); err != nil {
			return err
		}
	}
	if !alive(ctx, c, sentinelName(m)) {
		if err := e.startProc(ctx, c, m, sentinelName(m), sentinelConf(m), "--sentinel"); err != nil {
			return err
		}
	}
	return waitRunning(ctx, c, []engines.Member{m}, m.Name+" rejoined", func(ctx context.Context) error {
		p, ok := e.currentPrimary(ctx, c)
		if !ok {
			return errors.New("no Sentinel names a primary")
		}
		r, err := info(ctx, c, m)
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
	return c.Launch().Stop(ctx, name, stopGrace)
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
