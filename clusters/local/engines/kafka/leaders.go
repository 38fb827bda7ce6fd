package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// ElectPreferredLeaders makes the first broker of each partition's replica
// list its leader (a preferred replica election, as
// kafka-leader-election.sh --election-type PREFERRED does), for every
// partition of o.Topics. Kafka answers ELECTION_NOT_NEEDED for a
// partition already led by its preferred replica. A preferred broker that
// is down or not in sync cannot lead (PREFERRED_LEADER_NOT_AVAILABLE):
// those partitions are asked again until wait has passed, and the error
// then names them. (Partition.Replicas is sorted, so it cannot tell which
// broker is preferred; Kafka decides.)
func (e *Engine) ElectPreferredLeaders(ctx context.Context, c *engines.Cluster, o Options, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	parts, err := e.Partitions(ctx, c, o)
	if err != nil {
		return err
	}
	set := kadm.TopicsSet{}
	for _, p := range parts {
		set.Add(p.Topic, p.Partition)
	}
	cl, err := e.client(c, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := adm.ElectLeaders(rctx, kadm.ElectPreferredReplica, set)
		cancel()
		var errs []error
		if err != nil {
			errs = append(errs, err)
		} else {
			left := kadm.TopicsSet{}
			for _, ps := range res {
				for _, r := range ps {
					if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
						errs = append(errs, fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, r.Err))
						left.Add(r.Topic, r.Partition)
					}
				}
			}
			set = left
		}
		if len(errs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kafka: preferred leaders not elected within %s: %w", wait, errors.Join(errs...))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
