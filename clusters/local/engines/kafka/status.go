package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
)

// probeTimeout bounds every question Status asks one broker: a frozen
// broker accepts the TCP connection (the kernel does) but never answers.
const probeTimeout = 2 * time.Second

// Partition is one partition as the most up-to-date answering broker sees
// it. Node ids are member index + 1 (see NodeID).
type Partition struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"` // -1: none
	LeaderEpoch int32   `json:"leaderEpoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Offline     []int32 `json:"offline,omitempty"`
	// Err is the partition's error code from Kafka ("" = none), e.g.
	// LEADER_NOT_AVAILABLE.
	Err string `json:"err,omitempty"`
}

// memberMetadata asks member m alone (not whichever broker the client
// prefers) for metadata about topics (nil = all).
func (e *Engine) memberMetadata(ctx context.Context, c *engines.Cluster, m engines.Member, topics []string) (*kmsg.MetadataResponse, error) {
	md, _, err := e.askMember(ctx, c, m, topics, false)
	return md, err
}

// askMember sends member m its metadata request and, for KRaft, a
// DescribeQuorum (which the broker forwards to the active controller),
// both within one probeTimeout. The quorum leader is -1 when unknown.
func (e *Engine) askMember(ctx context.Context, c *engines.Cluster, m engines.Member, topics []string, quorum bool) (*kmsg.MetadataResponse, int32, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cl, err := e.client(c, []engines.Member{m})
	if err != nil {
		return nil, -1, err
	}
	defer cl.Close()
	b := cl.SeedBrokers()[0]
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := b.Request(ctx, req)
	if err != nil {
		return nil, -1, err
	}
	md := resp.(*kmsg.MetadataResponse)
	if !quorum {
		return md, -1, nil
	}
	qreq := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	qreq.Topics = append(qreq.Topics, rt)
	qresp, err := b.Request(ctx, qreq)
	if err != nil {
		return md, -1, nil
	}
	q := qresp.(*kmsg.DescribeQuorumResponse)
	if q.ErrorCode != 0 || len(q.Topics) == 0 || len(q.Topics[0].Partitions) == 0 || q.Topics[0].Partitions[0].ErrorCode != 0 {
		return md, -1, nil
	}
	return md, q.Topics[0].Partitions[0].LeaderID, nil
}

// probe is what one member answered.
type probe struct {
	alive        bool  // the recorded process runs
	unknown      error // why whether it runs is unknown
	md           *kmsg.MetadataResponse
	quorumLeader int32
	err          error
}

// probeAll asks every member in parallel; quorum adds DescribeQuorum.
func (e *Engine) probeAll(ctx context.Context, c *engines.Cluster, topics []string, quorum bool) []probe {
	out := make([]probe, len(c.Members))
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() {
			alive, err := c.Alive(ctx, procName(m))
			out[i].alive, out[i].unknown = alive, err
			if err != nil {
				out[i].err = fmt.Errorf("whether its process runs is unknown: %w", err)
				return
			}
			if !alive {
				out[i].err = errors.New("process not running")
				return
			}
			out[i].md, out[i].quorumLeader, out[i].err = e.askMember(ctx, c, m, topics, quorum)
		})
	}
	wg.Wait()
	return out
}

// freshest picks the metadata to believe: a broker cut off from the
// controller keeps a stale view, and leader epochs only grow. Ties go to
// the answer from the broker that most other answers list as alive.
func freshest(ps []probe, topics []string) (int, *kmsg.MetadataResponse) {
	best, bestEpochs, bestVotes := -1, int64(-1), -1
	for i, p := range ps {
		if p.md == nil {
			continue
		}
		var epochs int64
		for _, t := range p.md.Topics {
			if t.Topic == nil || (topics != nil && !slices.Contains(topics, *t.Topic)) {
				continue
			}
			for _, pt := range t.Partitions {
				epochs += int64(pt.LeaderEpoch)
			}
		}
		votes := 0
		for _, q := range ps {
			if q.md == nil {
				continue
			}
			for _, b := range q.md.Brokers {
				if b.NodeID == NodeID(i) {
					votes++
				}
			}
		}
		if epochs > bestEpochs || (epochs == bestEpochs && votes > bestVotes) {
			best, bestEpochs, bestVotes = i, epochs, votes
		}
	}
	if best < 0 {
		return -1, nil
	}
	return best, ps[best].md
}

func partitionsOf(md *kmsg.MetadataResponse) []Partition {
	var out []Partition
	for _, t := range md.Topics {
		if t.Topic == nil || strings.HasPrefix(*t.Topic, "__") {
			continue
		}
		for _, p := range t.Partitions {
			pp := Partition{
				Topic: *t.Topic, Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR), Offline: slices.Clone(p.OfflineReplicas),
			}
			slices.Sort(pp.Replicas)
			slices.Sort(pp.ISR)
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				pp.Err = err.Error()
			}
			out = append(out, pp)
		}
	}
	slices.SortFunc(out, func(a, b Partition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// Partitions returns leader, replicas and ISR of every partition of
// o.Topics (all non-internal topics when o.Topics is empty), as seen by the
// freshest answering broker. It fails only when no broker answers.
func (e *Engine) Partitions(ctx context.Context, c *engines.Cluster, o Options) ([]Partition, error) {
	topics := topicsFilter(o)
	ps := e.probeAll(ctx, c, topics, false)
	_, md := freshest(ps, topics)
	if md == nil {
		return nil, fmt.Errorf("kafka: no broker answers: %w", probeErrors(c, ps))
	}
	return partitionsOf(md), nil
}

func topicsFilter(o Options) []string {
	if len(o.Topics) == 0 {
		return nil
	}
	return o.Topics
}

func probeErrors(c *engines.Cluster, ps []probe) error {
	var errs []error
	for i, p := range ps {
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Members[i].Name, p.err))
		}
	}
	return errors.Join(errs...)
}

// quorumLeader is the KRaft leader most answers agree on (-1: none known).
func quorumLeader(ps []probe) int32 {
	votes := map[int32]int{}
	best := int32(-1)
	for _, p := range ps {
		if p.md == nil || p.quorumLeader < 0 {
			continue
		}
		votes[p.quorumLeader]++
		if best < 0 || votes[p.quorumLeader] > votes[best] {
			best = p.quorumLeader
		}
	}
	return best
}

// Status reports each member and whether the cluster takes acks=all
// writes: Writable means every partition of o.Topics has a leader and at
// least MinInSync replicas in sync. Each broker is asked at most for
// probeTimeout, in parallel, so a frozen or cut-off broker costs ~2 s.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster, o Options) (engines.Status, error) {
	o = o.withDefaults(len(c.Members))
	st := engines.Status{Engine: "kafka", Version: o.Version}
	topics := topicsFilter(o)
	ps := e.probeAll(ctx, c, topics, o.ZooKeeper == "")
	from, md := freshest(ps, topics)
	var parts []Partition
	registered := map[int32]bool{}
	controller := int32(-1)
	if md != nil {
		parts = partitionsOf(md)
		for _, b := range md.Brokers {
			registered[b.NodeID] = true
		}
		if o.ZooKeeper == "" {
			controller = quorumLeader(ps)
		} else {
			controller = md.ControllerID
		}
	}
	for i, m := range c.Members {
		id := NodeID(i)
		ms := engines.MemberStatus{Index: i, Name: m.Name, Up: ps[i].md != nil}
		var role []string
		switch {
		case controller == id && o.ZooKeeper == "":
			role = append(role, "controller-leader")
		case controller == id:
			role = append(role, "controller")
		case o.ZooKeeper == "" && isController(c, i):
			role = append(role, "controller-voter")
		default:
			role = append(role, "broker")
		}
		leads, replicas, outOfSync := 0, 0, 0
		for _, p := range parts {
			if p.Leader == id {
				leads++
			}
			if slices.Contains(p.Replicas, id) {
				replicas++
				if !slices.Contains(p.ISR, id) {
					outOfSync++
				}
			}
		}
		role = append(role, fmt.Sprintf("leader of %d/%d partitions", leads, len(parts)))
		ms.Role = strings.Join(role, ", ")
		// Without an active KRaft controller nothing can fail over or
		// shrink an ISR, so no member counts as healthy.
		ms.Healthy = ms.Up && registered[id] && outOfSync == 0 && (o.ZooKeeper != "" || controller >= 0)
		var detail []string
		if ps[i].err != nil {
			if ps[i].unknown != nil {
				detail = append(detail, ps[i].err.Error())
				ms.TimedOut = true
			} else if ps[i].alive {
				detail = append(detail, "process runs but does not answer: "+ps[i].err.Error())
				ms.TimedOut = lab.IsTimeout(ps[i].err)
			} else {
				detail = append(detail, ps[i].err.Error())
			}
		}
		if md != nil && !registered[id] {
			detail = append(detail, "not registered (fenced or offline) per member "+c.Members[from].Name)
		}
		if outOfSync > 0 {
			detail = append(detail, fmt.Sprintf("out of ISR on %d of its %d replicas", outOfSync, replicas))
		}
		if md != nil && o.ZooKeeper == "" && controller < 0 {
			detail = append(detail, "no active KRaft controller (quorum lost?)")
		}
		ms.Detail = strings.Join(detail, "; ")
		st.Members = append(st.Members, ms)
	}
	up := map[int32]bool{}
	for i, p := range ps {
		up[NodeID(i)] = p.md != nil
	}
	st.Writable = writable(parts, o, up)
	return st, nil
}

// writable: every partition's leader answers and at least MinInSync of its
// ISR answer. Metadata alone is not enough: with the controller gone, the
// survivors' metadata still lists dead brokers in the ISR.
func writable(parts []Partition, o Options, up map[int32]bool) bool {
	nUp := 0
	for _, u := range up {
		if u {
			nUp++
		}
	}
	if len(o.Topics) == 0 {
		return nUp >= o.MinInSync
	}
	if checkTopicsPresent(parts, o) != nil {
		return false
	}
	for _, p := range parts {
		live := 0
		for _, id := range p.ISR {
			if up[id] {
				live++
			}
		}
		if p.Leader < 0 || !up[p.Leader] || live < o.MinInSync {
			return false
		}
	}
	return true
}
