package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// replicaPriority is the replica-priority every redis.conf sets (Redis's
// default); PreferPrimary changes it for a while and puts it back.
const replicaPriority = 100

// Sentinel's polling periods (Redis's defaults; the engine does not change
// them otherwise). A Sentinel learns a replica's replica-priority from its
// INFO, read every info-period, and turns an old primary into a replica at
// the first INFO 4 publish-periods after the switch: with these values a
// PreferPrimary took 22 s, with the fast ones 7 s. PreferPrimary shortens
// them while it runs (SENTINEL DEBUG) and puts these values back.
const (
	sentinelInfoPeriod    = 10 * time.Second
	sentinelPublishPeriod = 2 * time.Second
	fastInfoPeriod        = 500 * time.Millisecond
	fastPublishPeriod     = 500 * time.Millisecond
)

// Bounds of PreferPrimary's steps, not tight (they hold with Sentinel's
// default periods too).
const (
	preferSettle   = 15 * time.Second // a just-restarted member becoming consistent
	preferSeen     = 15 * time.Second // Sentinels seeing new replica-priorities
	preferFailover = 30 * time.Second // SENTINEL FAILOVER to a healthy cluster under member 0
	adminWait      = 2 * time.Second  // one CONFIG or SENTINEL command
)

// PreferPrimary makes member 0 the primary again (as analyze's model
// assumes: the spec says Redis's primary is member 0), through Sentinel,
// when every member and sentinel is up and healthy; it is a no-op when
// member 0 already is the primary.
//
// A Sentinel failover cannot name its target, so every other member gets
// replica-priority 0 (never promoted) until the failover is over; the
// configured priority is put back, and rewritten into redis.conf, whatever
// happens. Writes sent to the old primary during the switch can be lost, as
// in any Sentinel failover: call it with no load running. It returns an
// error, without starting a failover, when a redis-server or Sentinel is not
// running or the cluster does not become healthy within a few seconds.
func (e *Engine) PreferPrimary(ctx context.Context, c *engines.Cluster) (err error) {
	for _, m := range c.Members {
		for _, name := range []string{redisName(m), sentinelName(m)} {
			if !alive(ctx, c, name) {
				return fmt.Errorf("redis %s: not moving the primary to %s: %s is not running", c.Service, c.Members[0].Name, name)
			}
		}
	}
	from := -1
	if err := waitRunning(ctx, c, c.Members, "redis "+c.Service+" healthy before moving the primary", func(ctx context.Context) error {
		var err error
		from, err = e.healthy(ctx, c)
		return err
	}, preferSettle); err != nil {
		return fmt.Errorf("redis %s: not moving the primary to %s: %w", c.Service, c.Members[0].Name, err)
	}
	if from == 0 {
		return nil
	}
	t0 := time.Now()
	e.log.Info("moving redis primary back to member 0", "service", c.Service, "from", c.Members[from].Name, "to", c.Members[0].Name)

	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adminWait*time.Duration(len(c.Members)+1))
		defer cancel()
		if rerr := setPeriods(rctx, c, sentinelInfoPeriod, sentinelPublishPeriod); rerr != nil {
			err = errors.Join(err, fmt.Errorf("redis %s: restoring Sentinel periods: %w", c.Service, rerr))
		}
	}()
	if err := setPeriods(ctx, c, fastInfoPeriod, fastPublishPeriod); err != nil {
		return fmt.Errorf("redis %s: %w", c.Service, err)
	}
	defer func() {
		// Put the priorities back even when ctx is done: a replica left at 0
		// would never be promoted by a later, real failover.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), preferSeen+5*time.Second)
		defer cancel()
		if rerr := e.restorePriorities(rctx, c); rerr != nil {
			err = errors.Join(err, fmt.Errorf("redis %s: restoring replica-priority: %w", c.Service, rerr))
		}
	}()
	for i, m := range c.Members {
		prio := 0
		if i == 0 {
			prio = replicaPriority
		}
		if err := setPriority(ctx, c, m, prio, false); err != nil {
			return fmt.Errorf("redis %s: %w", c.Service, err)
		}
	}

	// The Sentinel that runs the failover picks the replica from what it
	// last read; tell the first one that has read the new priorities.
	var leader int
	if err := engines.WaitFor(ctx, preferSeen, 250*time.Millisecond, "a Sentinel sees the new replica-priorities", func(ctx context.Context) error {
		var errs []error
		for s, m := range c.Members {
			prios, err := sentinelPriorities(ctx, c, m)
			if err != nil {
				errs = append(errs, fmt.Errorf("sentinel %s: %w", m.Name, err))
				continue
			}
			if err := prioritiesSet(c, from, prios); err != nil {
				errs = append(errs, fmt.Errorf("sentinel %s: %w", m.Name, err))
				continue
			}
			leader = s
			return nil
		}
		return errors.Join(errs...)
	}); err != nil {
		return fmt.Errorf("redis %s: %w", c.Service, err)
	}
	seen := time.Since(t0)
	sc := sentinelClient(c, c.Members[leader], adminWait)
	defer sc.Close()
	fctx, cancel := context.WithTimeout(ctx, adminWait)
	err = sc.Failover(fctx, MasterName(c)).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s: SENTINEL FAILOVER via %s: %w", c.Service, c.Members[leader].Name, err)
	}

	// Done when the cluster is healthy again under member 0: every Sentinel
	// names it, and the others (the old primary too) replicate from it.
	if err := waitRunning(ctx, c, c.Members, "redis "+c.Service+" healthy under "+c.Members[0].Name, func(ctx context.Context) error {
		p, err := e.healthy(ctx, c)
		if err != nil {
			return err
		}
		if p != 0 {
			return fmt.Errorf("primary is still %s", c.Members[p].Name)
		}
		return nil
	}, preferFailover); err != nil {
		return fmt.Errorf("redis %s: %s not primary after SENTINEL FAILOVER: %w", c.Service, c.Members[0].Name, err)
	}
	e.log.Info("redis primary is member 0 again", "service", c.Service, "took", time.Since(t0).Round(time.Millisecond),
		"priorities_seen", seen.Round(time.Millisecond))
	return nil
}

// prioritiesSet: in a Sentinel's view (replica address → replica-priority)
// member 0 may be promoted and no other replica may.
func prioritiesSet(c *engines.Cluster, primary int, prios map[string]int) error {
	for i, m := range c.Members {
		if i == primary {
			continue
		}
		p, ok := prios[m.Addr.String()]
		switch {
		case !ok:
			return fmt.Errorf("does not list replica %s", m.Name)
		case i == 0 && p == 0, i != 0 && p != 0:
			return fmt.Errorf("has replica-priority %d for %s", p, m.Name)
		}
	}
	return nil
}

// restorePriorities sets every running member's replica-priority back to
// the configured value, rewrites it into redis.conf (Sentinel's CONFIG
// REWRITEs during the failover wrote the temporary 0 there), and waits until
// the Sentinels have read it, so that a failure right after this finds
// candidates to promote.
func (e *Engine) restorePriorities(ctx context.Context, c *engines.Cluster) error {
	var errs []error
	for _, m := range c.Members {
		if alive(ctx, c, redisName(m)) {
			errs = append(errs, setPriority(ctx, c, m, replicaPriority, true))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return engines.WaitFor(ctx, preferSeen, 250*time.Millisecond, "Sentinels see replica-priority "+strconv.Itoa(replicaPriority), func(ctx context.Context) error {
		for _, s := range c.Members {
			if !alive(ctx, c, sentinelName(s)) {
				continue
			}
			prios, err := sentinelPriorities(ctx, c, s)
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", s.Name, err)
			}
			// A stopped member keeps the value Sentinel last read.
			for _, m := range c.Members {
				if p, ok := prios[m.Addr.String()]; ok && p != replicaPriority && alive(ctx, c, redisName(m)) {
					return fmt.Errorf("sentinel %s: %s has replica-priority %d", s.Name, m.Name, p)
				}
			}
		}
		return nil
	})
}

func setPriority(ctx context.Context, c *engines.Cluster, m engines.Member, prio int, rewrite bool) error {
	cl := client(c, m, adminWait)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*adminWait)
	defer cancel()
	if err := cl.ConfigSet(ctx, "replica-priority", strconv.Itoa(prio)).Err(); err != nil {
		return fmt.Errorf("%s: CONFIG SET replica-priority %d: %w", m.Name, prio, err)
	}
	if rewrite {
		if err := cl.ConfigRewrite(ctx).Err(); err != nil {
			return fmt.Errorf("%s: CONFIG REWRITE: %w", m.Name, err)
		}
	}
	return nil
}

// sentinelPriorities is the replica-priority a Sentinel last read from each
// replica, by address.
func sentinelPriorities(ctx context.Context, c *engines.Cluster, m engines.Member) (map[string]int, error) {
	sc := sentinelClient(c, m, statusWait)
	defer sc.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	reps, err := sc.Replicas(ctx, MasterName(c)).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(reps))
	for _, r := range reps {
		p, err := strconv.Atoi(r["slave-priority"])
		if err != nil {
			return nil, fmt.Errorf("replica %s: slave-priority %q", r["ip"], r["slave-priority"])
		}
		out[r["ip"]] = p
	}
	return out, nil
}

// setPeriods sets every running Sentinel's INFO and hello periods.
func setPeriods(ctx context.Context, c *engines.Cluster, info, publish time.Duration) error {
	var errs []error
	for _, m := range c.Members {
		if !alive(ctx, c, sentinelName(m)) {
			continue
		}
		sc := sentinelClient(c, m, adminWait)
		cctx, cancel := context.WithTimeout(ctx, adminWait)
		cmd := goredis.NewStatusCmd(cctx, "SENTINEL", "DEBUG", "info-period", info.Milliseconds(), "publish-period", publish.Milliseconds())
		if err := sc.Process(cctx, cmd); err != nil {
			errs = append(errs, fmt.Errorf("sentinel %s: SENTINEL DEBUG: %w", m.Name, err))
		}
		cancel()
		sc.Close()
	}
	return errors.Join(errs...)
}
