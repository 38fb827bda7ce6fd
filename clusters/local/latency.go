package local

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/chaosloop/chaosloop/clusters/local/netdelay"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// runningDelayer is a userspace delayer serving one NFQUEUE of a latency
// fault. The kernel has no netem here; the delayer runs inside chaosloop,
// and if chaosloop dies the rules' --queue-bypass lets traffic flow
// undelayed until Recover removes them.
type runningDelayer struct {
	cancel context.CancelFunc
	done   chan error
	d      *netdelay.Delayer
}

func (l *Lab) latency(ctx context.Context, tg scenarios.Target, af lab.Injected, inject bool) error {
	key := af.Key()
	if !inject {
		l.mu.Lock()
		ds := l.delayers[key]
		delete(l.delayers, key)
		l.mu.Unlock()
		var errs []error
		for _, d := range ds {
			d.cancel()
			<-d.done
		}
		if af.Delay > 0 || af.Jitter > 0 {
			errs = append(errs, l.net.RemoveLatencyRules(ctx, tg))
		}
		if af.Loss > 0 && af.Delay == 0 && af.Jitter == 0 {
			errs = append(errs, l.net.RemoveLossRules(ctx, tg))
		}
		return errors.Join(errs...)
	}
	if af.Delay == 0 && af.Jitter == 0 {
		if af.Loss == 0 {
			return fmt.Errorf("latency %s: no delay, jitter or loss", af.Target)
		}
		return l.net.LossRules(ctx, tg, af.Loss)
	}
	queues, err := l.net.LatencyRules(ctx, tg)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	var started []*runningDelayer
	for i, q := range queues {
		cfg := netdelay.Config{Queue: q.Num, Delay: af.Delay, Jitter: af.Jitter, Loss: af.Loss,
			Seed: l.opts.Seed ^ h.Sum64() ^ uint64(i)}
		d, err := netdelay.OpenInNetNS(context.Background(), l.opts.Log, q.NetNS, cfg)
		if err != nil {
			for _, s := range started {
				s.cancel()
				<-s.done
			}
			_ = l.net.RemoveLatencyRules(ctx, tg)
			return fmt.Errorf("latency %s: %w", af.Target, err)
		}
		dctx, cancel := context.WithCancel(context.Background())
		rd := &runningDelayer{cancel: cancel, done: make(chan error, 1), d: d}
		go func() { rd.done <- d.Serve(dctx) }()
		started = append(started, rd)
	}
	l.mu.Lock()
	if l.delayers == nil {
		l.delayers = map[string][]*runningDelayer{}
	}
	l.delayers[key] = started
	l.mu.Unlock()
	return nil
}
