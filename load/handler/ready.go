package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load/wire"
)

// AwaitGroups returns once members handlers are in each of cfg's consumer
// groups (prepare and fulfil), the groups are Stable and every partition
// of their topics is assigned: until then the handlers are still joining
// (each join is a rebalance, and a rebalance consumes nothing), and load
// offered meanwhile queues for seconds before the first record is
// processed (measured: the first transfer of a run acknowledged 4.7 s
// after the load began). It gives up after wait, saying what it last saw.
func AwaitGroups(ctx context.Context, log *slog.Logger, cfg Config, dial lab.DialFunc, members int, wait time.Duration) error {
	cfg = cfg.withDefaults()
	cl, err := kgo.NewClient(append(wire.ClientOpts(cfg.Brokers, dial, log), kgo.ClientID(cfg.Name+"-ready"))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	want := map[string]string{cfg.Group + "-prepare": cfg.Topics.Prepare, cfg.Group + "-fulfil": cfg.Topics.Fulfil}
	deadline := time.Now().Add(wait)
	for {
		// Each look gets its own bound, so the last one before the
		// deadline still ends with what it saw, not with the deadline.
		actx, cancel := context.WithTimeout(ctx, groupLookTimeout)
		last := groupsReady(actx, adm, want, members)
		cancel()
		switch {
		case last == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("handlers' consumer groups: %w (%v)", ctx.Err(), last)
		case time.Now().After(deadline):
			return fmt.Errorf("handlers' consumer groups not ready after %s: %w", wait, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// groupLookTimeout bounds one look at the groups.
const groupLookTimeout = 5 * time.Second

// groupsReady says what keeps any of groups (name → its topic) from being
// ready, nil when none.
func groupsReady(ctx context.Context, adm *kadm.Client, groups map[string]string, members int) error {
	topics := make([]string, 0, len(groups))
	names := make([]string, 0, len(groups))
	for g, t := range groups {
		names = append(names, g)
		topics = append(topics, t)
	}
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return err
	}
	dg, err := adm.DescribeGroups(ctx, names...)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range names {
		d, ok := dg[g]
		switch {
		case !ok || d.Err != nil:
			errs = append(errs, fmt.Errorf("%s: not described (%v)", g, d.Err))
			continue
		case d.State != "Stable":
			errs = append(errs, fmt.Errorf("%s: %s", g, d.State))
			continue
		case len(d.Members) != members:
			errs = append(errs, fmt.Errorf("%s: %d of %d handlers", g, len(d.Members), members))
			continue
		}
		t := groups[g]
		parts := len(td[t].Partitions)
		assigned := len(d.AssignedPartitions()[t])
		if parts == 0 || assigned < parts {
			errs = append(errs, fmt.Errorf("%s: %d of %d partitions of %s assigned", g, assigned, parts, t))
		}
	}
	return errors.Join(errs...)
}
