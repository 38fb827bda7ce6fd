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

// NotPreferred lists the partitions of parts whose leader is not the first
// broker of their replica list (Kafka's preferred replica), as
// "topic/partition leader N, preferred M".
func NotPreferred(parts []Partition) []string {
	var out []string
	for _, p := range parts {
		if len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
			out = append(out, fmt.Sprintf("%s/%d leader %d, preferred %d", p.Topic, p.Partition, p.Leader, p.Replicas[0]))
		}
	}
	return out
}

// ElectPreferredLeaders makes the first broker of each partition's replica
// list its leader (a preferred replica election, as
// kafka-leader-election.sh --election-type PREFERRED does), for the
// partitions of o.Topics, and waits up to wait until every leader is the
// preferred one. A preferred broker that is down or not in sync cannot
// lead; the error then names the partitions left elsewhere.
func (e *Engine) ElectPreferredLeaders(ctx context.Context, c *engines.Cluster, o Options, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	cl, err := e.client(c, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		parts, err := e.Partitions(ctx, c, o)
		if err != nil {
			return err
		}
		off := NotPreferred(parts)
		if len(off) == 0 {
			return nil
		}
		set := kadm.TopicsSet{}
		for _, p := range parts {
			if len(p.Replicas) > 0 && p.Leader != p.Replicas[0] {
				set.Add(p.Topic, p.Partition)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := adm.ElectLeaders(rctx, kadm.ElectPreferredReplica, set)
		cancel()
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		for _, ps := range res {
			for _, r := range ps {
				if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
					errs = append(errs, fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, r.Err))
				}
			}
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("kafka: preferred leaders not elected within %s: %v", wait, off)
			if len(errs) > 0 {
				err = fmt.Errorf("%w: %w", err, errors.Join(errs...))
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
