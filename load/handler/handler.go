// Package handler is the workload's Mojaloop handlers as one worker: the
// prepare/position handler (consume topic-transfer-prepare, run the
// prepare transaction, emit to topic-transfer-position and, for the
// simulated payee that fulfils at once, topic-transfer-fulfil — or a
// REJECTED notification) and the fulfil handler (consume
// topic-transfer-fulfil, commit, emit a COMMITTED notification).
//
// Each poll is cut into batches, one ledger transaction each (as
// central-ledger's batch position handler does: each position locked once
// per batch, one commit for many transfers), which is what lets the
// handlers keep up with the load on a few cores.
//
// Delivery is at least once: a poll's offsets are committed only after its
// transactions committed and its output records were acknowledged
// (acks=all, idempotent producer). Redeliveries are harmless because both
// transactions are idempotent (see package ledger).
//
// The runner starts one worker per member of the scenario's stateless
// service, as `chaosloop internal handler --config FILE` inside that node's
// network namespace, so a power cut there kills its handlers.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load/ledger"
	"github.com/chaosloop/chaosloop/load/wire"
)

// Config is a worker's configuration (JSON, for the hidden command).
type Config struct {
	// Name identifies the worker in logs and as Kafka client id.
	Name string `json:"name"`
	// Brokers are Kafka bootstrap addresses.
	Brokers []string `json:"brokers"`
	// DSNs of every Galera member, in preference order.
	DSNs []string `json:"dsns"`
	// Group is the consumer group prefix: the prepare handlers consume as
	// Group+"-prepare", the fulfil handlers as Group+"-fulfil".
	Group string `json:"group"`
	// Topics (defaults: central-ledger's names, see package wire).
	Topics Topics `json:"topics"`
	// BatchSize bounds the transfers in one ledger transaction (default
	// 500): a batch locks each position it touches once, so a larger one
	// amortises the lock and the commit over more transfers.
	BatchSize int `json:"batchSize"`
	// Concurrency is the number of batches in flight per handler (default
	// 4): one batch's round trips overlap with another's commit.
	Concurrency int `json:"concurrency"`
	// MaxPollRecords bounds what one poll takes (default 4000).
	MaxPollRecords int `json:"maxPollRecords"`
	// SessionTimeoutMS: how soon the group notices a dead worker (default
	// central-ledger's: librdkafka's session.timeout.ms, 45000).
	SessionTimeoutMS int `json:"sessionTimeoutMs"`

	// Dial opens every connection (nil: a dialer whose connections fail
	// within seconds when their path goes dark); in-process use only.
	Dial lab.DialFunc `json:"-"`
}

// Topics names the pipeline's topics.
type Topics struct {
	Prepare      string `json:"prepare"`
	Position     string `json:"position"`
	Fulfil       string `json:"fulfil"`
	Notification string `json:"notification"`
}

func (c Config) withDefaults() Config {
	if c.Dial == nil {
		// A handler whose broker or database is cut off must notice and
		// move on within seconds, not after the kernel's retransmissions.
		c.Dial = lab.FailFastDial(4 * time.Second)
	}
	if c.Name == "" {
		c.Name = "handler"
	}
	if c.Group == "" {
		c.Group = "chaosloop-handlers"
	}
	if c.Topics.Prepare == "" {
		c.Topics.Prepare = wire.TopicPrepare
	}
	if c.Topics.Position == "" {
		c.Topics.Position = wire.TopicPosition
	}
	if c.Topics.Fulfil == "" {
		c.Topics.Fulfil = wire.TopicFulfil
	}
	if c.Topics.Notification == "" {
		c.Topics.Notification = wire.TopicNotification
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 4000
	}
	if c.SessionTimeoutMS <= 0 {
		c.SessionTimeoutMS = int(wire.SessionTimeout / time.Millisecond)
	}
	return c
}

// ReadConfig loads a JSON config file.
func ReadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.Brokers) == 0 || len(c.DSNs) == 0 {
		return c, fmt.Errorf("%s: brokers and dsns are required", path)
	}
	return c, nil
}

// Run runs the prepare and fulfil handlers until ctx ends (returning nil)
// or one of them fails for good.
func Run(ctx context.Context, log *slog.Logger, cfg Config) error {
	cfg = cfg.withDefaults()
	log = log.With("handler", cfg.Name)
	store, err := ledger.Open(ledger.Options{DSNs: cfg.DSNs, Dial: cfg.Dial, Log: log, MaxConns: wire.DBPoolSize})
	if err != nil {
		return err
	}
	defer store.Close()
	prod, err := kgo.NewClient(append(append(common(cfg, log), wire.ProducerOpts()...),
		kgo.ClientID(cfg.Name+"-producer"),
	)...)
	if err != nil {
		return err
	}
	defer prod.Close()
	h := &handlers{cfg: cfg, log: log, store: store, prod: prod}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- h.consume(ctx, cfg.Topics.Prepare, cfg.Group+"-prepare", h.prepare) }()
	go func() { errs <- h.consume(ctx, cfg.Topics.Fulfil, cfg.Group+"-fulfil", h.fulfil) }()
	err = <-errs
	cancel()
	err2 := <-errs
	if ctx.Err() != nil && err == nil {
		return err2
	}
	return errors.Join(err, err2)
}

func common(cfg Config, log *slog.Logger) []kgo.Opt {
	return wire.ClientOpts(cfg.Brokers, cfg.Dial, log)
}

type handlers struct {
	cfg   Config
	log   *slog.Logger
	store *ledger.Store
	prod  *kgo.Client
}

// process handles a batch of input records and returns the records to
// emit.
type process func(ctx context.Context, recs []*kgo.Record) []*kgo.Record

// consume runs one handler: poll, cut what came into batches (one
// partition's records in offset order, at most BatchSize each), process
// up to Concurrency batches at once, emitting each batch's output as soon
// as it is done; once every output of the poll is acknowledged, commit the
// poll's offsets.
func (h *handlers) consume(ctx context.Context, topic, group string, f process) error {
	cl, err := kgo.NewClient(append(common(h.cfg, h.log),
		kgo.ClientID(h.cfg.Name+"-"+group),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// A rebalance waits until the poll is processed and committed, so
		// no partition moves away mid-batch.
		kgo.BlockRebalanceOnPoll(),
		// central-ledger's consumers: librdkafka's defaults (wire/mojaloop.go).
		kgo.SessionTimeout(time.Duration(h.cfg.SessionTimeoutMS)*time.Millisecond),
		kgo.HeartbeatInterval(wire.HeartbeatInterval),
		kgo.RebalanceTimeout(wire.RebalanceTimeout),
		kgo.FetchMaxWait(wire.FetchMaxWait),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	log := h.log.With("group", group)
	sem := make(chan struct{}, h.cfg.Concurrency)
	for {
		fetches := cl.PollRecords(ctx, h.cfg.MaxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Warn("fetch", "topic", t, "partition", p, "err", err)
		})
		var batches [][]*kgo.Record
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for recs := p.Records; len(recs) > 0; {
				n := min(len(recs), h.cfg.BatchSize)
				batches = append(batches, recs[:n])
				recs = recs[n:]
			}
		})
		if len(batches) == 0 {
			cl.AllowRebalance()
			continue
		}
		t0 := time.Now()
		var procTime atomic.Int64
		var (
			wg, acks sync.WaitGroup
			mu       sync.Mutex
			prodErr  error
		)
		for _, b := range batches {
			sem <- struct{}{}
			wg.Go(func() {
				tb := time.Now()
				out := f(ctx, b)
				procTime.Add(int64(time.Since(tb)))
				<-sem
				acks.Add(len(out))
				for _, r := range out {
					// The idempotent producer retries until acknowledged:
					// only ctx ends this without success.
					h.prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
						if err != nil {
							mu.Lock()
							prodErr = errors.Join(prodErr, err)
							mu.Unlock()
						}
						acks.Done()
					})
				}
			})
		}
		wg.Wait()
		t1 := time.Now()
		acks.Wait()
		// A slow poll is what stalls the partitions this worker owns (and,
		// with BlockRebalanceOnPoll, a rebalance of the whole group): say
		// where its time went.
		lvl := slog.LevelDebug
		if time.Since(t0) > time.Second {
			lvl = slog.LevelInfo
		}
		log.Log(ctx, lvl, "poll processed", "records", fetches.NumRecords(), "batches", len(batches),
			"process", time.Duration(procTime.Load()), "wall", t1.Sub(t0), "acks", time.Since(t1))
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		if prodErr != nil {
			cl.AllowRebalance()
			return fmt.Errorf("%s: produce: %w", group, prodErr)
		}
		offsets := map[string]map[int32]kgo.EpochOffset{}
		for _, b := range batches {
			last := b[len(b)-1]
			eo := kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
			if offsets[last.Topic] == nil {
				offsets[last.Topic] = map[int32]kgo.EpochOffset{}
			}
			if cur, ok := offsets[last.Topic][last.Partition]; !ok || cur.Less(eo) {
				offsets[last.Topic][last.Partition] = eo
			}
		}
		// Synchronously, before a rebalance may move the partitions: the
		// next owner starts after what was processed here.
		cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err = commitErr(resp, err); err != nil && ctx.Err() == nil {
				// Not fatal: the records are redelivered and processed again
				// idempotently.
				log.Warn("commit offsets", "err", err)
			}
		})
		cl.AllowRebalance()
	}
}

// commitErr is a commit's error, or the first partition's error in its
// response.
func commitErr(resp *kmsg.OffsetCommitResponse, err error) error {
	if err != nil || resp == nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
				return e
			}
		}
	}
	return nil
}

// prepare is the prepare/position handler for a batch.
func (h *handlers) prepare(ctx context.Context, recs []*kgo.Record) []*kgo.Record {
	ps := make([]wire.Prepare, 0, len(recs))
	for _, r := range recs {
		p, err := wire.Decode[wire.Prepare](r.Value)
		if err != nil {
			h.log.Error("prepare: skipping undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		ps = append(ps, p)
	}
	res := h.store.PrepareBatch(ctx, ps)
	out := make([]*kgo.Record, 0, 2*len(ps))
	for i, p := range ps {
		o, err := res[i].Outcome, res[i].Err
		switch {
		case errors.Is(err, ledger.ErrUnknownParticipant):
			// Refused before anything was written.
			out = append(out, h.notify(p.TransferID, wire.StateRejected, err.Error()))
			continue
		case err != nil:
			if ctx.Err() == nil {
				h.log.Error("prepare failed", "transfer", p.TransferID, "err", err)
			}
			continue
		}
		pos := p
		pos.State = o.State
		out = append(out, &kgo.Record{Topic: h.cfg.Topics.Position, Key: []byte(p.Payer), Value: wire.Encode(pos)})
		switch o.State {
		case wire.StateReserved, wire.StateCommitted:
			// The simulated payee fulfils at once; a redelivered prepare
			// sends the fulfilment again, which the fulfil handler ignores.
			// Keyed by payee, as prepares are by payer: a partition's
			// batch then locks only the positions hashed to it, and
			// batches of other partitions run in parallel.
			out = append(out, &kgo.Record{Topic: h.cfg.Topics.Fulfil, Key: []byte(p.Payee),
				Value: wire.Encode(wire.Fulfil{TransferID: p.TransferID, Fulfilment: "fulfilment-" + p.TransferID})})
		default:
			out = append(out, h.notify(p.TransferID, wire.StateRejected, o.Reason))
		}
	}
	return out
}

// fulfil is the fulfil handler for a batch.
func (h *handlers) fulfil(ctx context.Context, recs []*kgo.Record) []*kgo.Record {
	fs := make([]wire.Fulfil, 0, len(recs))
	for _, r := range recs {
		f, err := wire.Decode[wire.Fulfil](r.Value)
		if err != nil {
			h.log.Error("fulfil: skipping undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		fs = append(fs, f)
	}
	res := h.store.FulfilBatch(ctx, fs)
	out := make([]*kgo.Record, 0, len(fs))
	for i, f := range fs {
		o, err := res[i].Outcome, res[i].Err
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("fulfil failed", "transfer", f.TransferID, "err", err)
			}
			continue
		}
		switch o.State {
		case wire.StateCommitted:
			out = append(out, h.notify(f.TransferID, wire.StateCommitted, ""))
		case wire.StateAborted:
			out = append(out, h.notify(f.TransferID, wire.StateRejected, o.Reason))
		default:
			h.log.Warn("fulfil of a transfer that is not reserved", "transfer", f.TransferID, "state", o.State)
		}
	}
	return out
}

func (h *handlers) notify(id, state, reason string) *kgo.Record {
	return &kgo.Record{Topic: h.cfg.Topics.Notification, Key: []byte(id),
		Value: wire.Encode(wire.Notification{TransferID: id, State: state, Reason: reason})}
}
