// Package handler is the workload's Mojaloop handlers as one worker: the
// prepare/position handler (consume topic-transfer-prepare, run the
// prepare transaction, emit to topic-transfer-position and, for the
// simulated payee that fulfils at once, topic-transfer-fulfil — or a
// REJECTED notification) and the fulfil handler (consume
// topic-transfer-fulfil, commit, emit a COMMITTED notification).
//
// Delivery is at least once: a batch's offsets are committed only after its
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
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
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
	// Concurrency is the number of transactions in flight per partition
	// (default 16): Galera's commit latency must not serialise a partition.
	Concurrency int `json:"concurrency"`
	// MaxPollRecords bounds one batch (default 500).
	MaxPollRecords int `json:"maxPollRecords"`
	// SessionTimeoutMS: how soon the group notices a dead worker (default
	// 6000, the brokers' minimum).
	SessionTimeoutMS int `json:"sessionTimeoutMs"`

	// Dial opens every connection (nil: net.Dialer); in-process use only.
	Dial engines.DialFunc `json:"-"`
}

// Topics names the pipeline's topics.
type Topics struct {
	Prepare      string `json:"prepare"`
	Position     string `json:"position"`
	Fulfil       string `json:"fulfil"`
	Notification string `json:"notification"`
}

func (c Config) withDefaults() Config {
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
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 500
	}
	if c.SessionTimeoutMS <= 0 {
		c.SessionTimeoutMS = 6000
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
	store, err := ledger.Open(ledger.Options{DSNs: cfg.DSNs, Dial: cfg.Dial, Log: log, MaxConns: 2 * cfg.Concurrency * 3})
	if err != nil {
		return err
	}
	defer store.Close()
	prod, err := kgo.NewClient(append(common(cfg),
		kgo.ClientID(cfg.Name+"-producer"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
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

func common(cfg Config) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(3 * time.Second),
		kgo.MetadataMinAge(500 * time.Millisecond),
		kgo.MetadataMaxAge(10 * time.Second),
	}
	if cfg.Dial != nil {
		opts = append(opts, kgo.Dialer(cfg.Dial))
	}
	return opts
}

type handlers struct {
	cfg   Config
	log   *slog.Logger
	store *ledger.Store
	prod  *kgo.Client
}

// process handles one input record and returns the records to emit.
type process func(ctx context.Context, r *kgo.Record) []*kgo.Record

// consume runs one handler: poll a batch, process each partition's records
// concurrently (bounded per partition), emit every output and wait for the
// brokers' acknowledgements, then commit the batch's offsets.
func (h *handlers) consume(ctx context.Context, topic, group string, f process) error {
	cl, err := kgo.NewClient(append(common(h.cfg),
		kgo.ClientID(h.cfg.Name+"-"+group),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// A rebalance waits until the batch is processed and committed, so
		// no partition moves away mid-batch.
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(time.Duration(h.cfg.SessionTimeoutMS)*time.Millisecond),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(30*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	log := h.log.With("group", group)
	for {
		fetches := cl.PollRecords(ctx, h.cfg.MaxPollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Warn("fetch", "topic", t, "partition", p, "err", err)
		})
		var batch []*kgo.Record
		var outs [][]*kgo.Record
		var mu sync.Mutex
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			batch = append(batch, p.Records...)
			wg.Go(func() {
				sem := make(chan struct{}, h.cfg.Concurrency)
				var pwg sync.WaitGroup
				for _, r := range p.Records {
					sem <- struct{}{}
					pwg.Go(func() {
						defer func() { <-sem }()
						out := f(ctx, r)
						mu.Lock()
						outs = append(outs, out)
						mu.Unlock()
					})
				}
				pwg.Wait()
			})
		})
		wg.Wait()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		var emit []*kgo.Record
		for _, o := range outs {
			emit = append(emit, o...)
		}
		if len(emit) > 0 {
			// The idempotent producer retries until acknowledged: only ctx
			// ends this without success.
			if err := h.prod.ProduceSync(ctx, emit...).FirstErr(); err != nil {
				cl.AllowRebalance()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("%s: produce: %w", group, err)
			}
		}
		if len(batch) > 0 {
			if err := cl.CommitRecords(ctx, batch...); err != nil && ctx.Err() == nil {
				// Not fatal: the records are redelivered and processed again
				// idempotently (e.g. after a rebalance moved them away).
				log.Warn("commit offsets", "records", len(batch), "err", err)
			}
		}
		cl.AllowRebalance()
	}
}

// prepare is the prepare/position handler for one record.
func (h *handlers) prepare(ctx context.Context, r *kgo.Record) []*kgo.Record {
	p, err := wire.Decode[wire.Prepare](r.Value)
	if err != nil {
		h.log.Error("prepare: skipping undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	out, err := h.store.Prepare(ctx, p)
	switch {
	case errors.Is(err, ledger.ErrUnknownParticipant):
		// Refused before anything was written.
		return []*kgo.Record{h.notify(p.TransferID, wire.StateRejected, err.Error())}
	case err != nil:
		if ctx.Err() == nil {
			h.log.Error("prepare failed", "transfer", p.TransferID, "err", err)
		}
		return nil
	}
	pos := p
	pos.State = out.State
	recs := []*kgo.Record{{Topic: h.cfg.Topics.Position, Key: []byte(p.Payer), Value: wire.Encode(pos)}}
	switch out.State {
	case wire.StateReserved, wire.StateCommitted:
		// The simulated payee fulfils at once; a redelivered prepare sends
		// the fulfilment again, which the fulfil handler ignores.
		recs = append(recs, &kgo.Record{Topic: h.cfg.Topics.Fulfil, Key: []byte(p.TransferID),
			Value: wire.Encode(wire.Fulfil{TransferID: p.TransferID, Fulfilment: "fulfilment-" + p.TransferID})})
	default:
		recs = append(recs, h.notify(p.TransferID, wire.StateRejected, out.Reason))
	}
	return recs
}

// fulfil is the fulfil handler for one record.
func (h *handlers) fulfil(ctx context.Context, r *kgo.Record) []*kgo.Record {
	f, err := wire.Decode[wire.Fulfil](r.Value)
	if err != nil {
		h.log.Error("fulfil: skipping undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil
	}
	out, err := h.store.Fulfil(ctx, f)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Error("fulfil failed", "transfer", f.TransferID, "err", err)
		}
		return nil
	}
	switch out.State {
	case wire.StateCommitted:
		return []*kgo.Record{h.notify(f.TransferID, wire.StateCommitted, "")}
	case wire.StateAborted:
		return []*kgo.Record{h.notify(f.TransferID, wire.StateRejected, out.Reason)}
	}
	h.log.Warn("fulfil of a transfer that is not reserved", "transfer", f.TransferID, "state", out.State)
	return nil
}

func (h *handlers) notify(id, state, reason string) *kgo.Record {
	return &kgo.Record{Topic: h.cfg.Topics.Notification, Key: []byte(id),
		Value: wire.Encode(wire.Notification{TransferID: id, State: state, Reason: reason})}
}
