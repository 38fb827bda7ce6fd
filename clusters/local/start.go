package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

func (l *Lab) install(ctx context.Context) error {
	done := map[string]bool{}
	for _, ss := range l.st.Services {
		if ss.Engine == EngineNone || done[ss.Engine] {
			continue
		}
		done[ss.Engine] = true
		e, err := l.eng.get(ss.Engine, ss)
		if err != nil {
			return err
		}
		l.opts.progress(lab.Progress{Service: ss.Name, Stage: "installing", Detail: ss.Engine})
		if err := e.Install(l.opts.installing(ctx, ss.Name)); err != nil {
			return fmt.Errorf("installing %s: %w", ss.Engine, err)
		}
	}
	// Installed, the services wait for the network (on kind: the cluster,
	// minutes), which "still installing" misnamed.
	for _, ss := range l.st.Services {
		if ss.Engine != EngineNone {
			l.opts.progress(lab.Progress{Service: ss.Name, Stage: "waiting", Detail: "installed; the lab network comes up first"})
		}
	}
	return nil
}

// startAll starts every service, those a Kafka service depends on first,
// and waits until each is healthy.
func (l *Lab) startAll(ctx context.Context) error {
	// Engines that run as their own users (mysql, redis, postgres) must
	// traverse the per-node parents; create them here, world-traversable,
	// before an engine that keeps its own data private creates them 0700.
	for _, ss := range l.st.Services {
		for _, m := range ss.Cluster.Members {
			for _, d := range []string{filepath.Dir(m.DataDir), filepath.Dir(m.LogDir)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
				if err := os.Chmod(d, 0o755); err != nil {
					return err
				}
			}
		}
	}
	var first, second []*serviceState
	for _, ss := range l.st.Services {
		if ss.Engine == EngineNone {
			continue
		}
		if ss.Kind == scenarios.KindKafka && ss.Controller != "" {
			// ZooKeeper mode needs its ensemble first; KRaft starts with the rest.
			second = append(second, ss)
		} else {
			first = append(first, ss)
		}
	}
	for _, wave := range [][]*serviceState{first, second} {
		g, gctx := errgroup.WithContext(ctx)
		// Two cores: starting every JVM and database at once only makes
		// each slower.
		g.SetLimit(3)
		for _, ss := range wave {
			g.Go(func() error {
				e, err := l.eng.get(ss.Engine, ss)
				if err != nil {
					return err
				}
				l.opts.progress(lab.Progress{Service: ss.Name, Stage: "starting", Detail: fmt.Sprintf("%s ×%d", ss.Engine, len(ss.Cluster.Members))})
				if err := e.Start(gctx, &ss.Cluster); err != nil {
					l.opts.progress(lab.Progress{Service: ss.Name, Stage: "failed", Err: err})
					return fmt.Errorf("service %s (%s): %w", ss.Name, ss.Engine, err)
				}
				l.opts.progress(lab.Progress{Service: ss.Name, Stage: "healthy"})
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}
