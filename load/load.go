// Package load is the workload's client: an open-loop generator of
// Mojaloop-shaped transfers (see package arrival) that records every
// operation's invocation and completion in the run's history.
//
// Per arrival, with the seeded plan's payer, payee and amount:
//   - a single transfer (most arrivals): the duplicate check in Redis (SET NX
//     on the transfer id through Sentinel: op redis-set), the prepare to
//     topic-transfer-prepare (acks=all, idempotent producer: op
//     kafka-produce with topic/partition/offset), then the wait for its
//     notification: transfer ok (COMMITTED), fail (REJECTED, or refused
//     before it was sent) or info (timeout or error: outcome unknown);
//   - a bulk transfer (Config.BulkShare of arrivals): a document in the
//     document store's bulkTransfers collection, majority write concern
//     (op bulk).
//
// The handlers that move the transfer on are package load/handler; the
// readers of the final state are package load/finalstate.
package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load/arrival"
	"github.com/chaosloop/chaosloop/load/wire"
)

// Recorder takes history events (history.Writer is one).
type Recorder interface {
	Add(history.Event) error
}

// Kafka is the brokers the client produces to and consumes from.
type Kafka struct {
	Service string
	Brokers []string
}

// Redis is the Sentinel-monitored duplicate-check store.
type Redis struct {
	Service    string
	MasterName string
	Sentinels  []string
	// Password of the data nodes, if any.
	Password string
}

// Docstore is the document store (FerretDB endpoints, one mongodb:// URI
// per member; the client uses the first that works and fails over).
type Docstore struct {
	Service string
	URIs    []string
}

// Config of a load run.
type Config struct {
	// Rate in arrivals per second, for Duration.
	Rate     float64
	Duration time.Duration
	// MaxInFlight bounds the arrivals in progress (VUs); default enough for
	// the rate over the whole Timeout, so drops mean the harness is out of
	// VUs only when the system under test stalls longer than that.
	MaxInFlight int
	// Timeout for one transfer's notification (default 30 s).
	Timeout time.Duration
	// Seed drives every random choice (payer, payee, amount, bulk or not).
	Seed uint64
	// RunID prefixes transfer ids (at most 26 characters: ids are
	// VARCHAR(36)); default the start time.
	RunID string
	// Participants (at least 2) and the currency of every transfer.
	Participants []string
	Currency     string
	// MaxAmount: amounts are uniform in [1, MaxAmount] minor units
	// (default 10000).
	MaxAmount int64
	// BulkShare of arrivals are bulk transfers (default 0.1; negative: none).
	BulkShare float64

	Kafka    Kafka
	Redis    Redis
	Docstore Docstore // optional: without URIs no bulk transfers are made
	// Dial opens every connection (nil: net.Dialer): Lab.DialFrom places
	// the client on a node.
	Dial lab.DialFunc
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = max(64, int(c.Rate*c.Timeout.Seconds())+16)
	}
	if c.RunID == "" {
		c.RunID = time.Now().UTC().Format("20060102T150405")
	}
	if c.Currency == "" {
		c.Currency = "XXX"
	}
	if c.MaxAmount <= 0 {
		c.MaxAmount = 10000
	}
	if c.BulkShare == 0 {
		c.BulkShare = 0.1
	}
	if len(c.Docstore.URIs) == 0 || c.BulkShare < 0 {
		c.BulkShare = 0
	}
	return c
}

// Stats are live counters for a progress display.
type Stats struct {
	arrival.Stats
	Acknowledged atomic.Int64 // transfers COMMITTED (notification arrived)
	Rejected     atomic.Int64 // transfers refused
	Unknown      atomic.Int64 // transfers with unknown outcome
	Bulk         atomic.Int64 // bulk transfers acknowledged
}

// Generator drives transfers through the pipeline.
type Generator struct {
	cfg   Config
	log   *slog.Logger
	rec   Recorder
	prod  *kgo.Client
	notes *notifications
	redis *goredis.Client
	bulk  *bulkWriter
	stats Stats
	// until is how long the arrivals last when ExtendTo moved it past
	// cfg.Duration (nanoseconds; 0: cfg.Duration).
	until atomic.Int64
}

// ExtendTo makes the arrivals last until d after Run started, if that is
// later than the configured Duration (or an earlier ExtendTo). Safe while
// Run runs: a fault schedule that slipped extends the load it measures.
func (g *Generator) ExtendTo(d time.Duration) {
	for {
		cur := g.until.Load()
		if int64(d) <= cur || g.until.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// Until is how long the arrivals last, after ExtendTo.
func (g *Generator) Until() time.Duration {
	return max(g.cfg.Duration, time.Duration(g.until.Load()))
}

// New connects the clients. The notification consumer starts at once, so
// it sees every notification for transfers sent after New returns.
func New(ctx context.Context, log *slog.Logger, cfg Config, rec Recorder) (*Generator, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Participants) < 2 {
		return nil, errors.New("load: need at least 2 participants")
	}
	if len(cfg.RunID) > 26 {
		return nil, fmt.Errorf("load: run id %q longer than 26 characters", cfg.RunID)
	}
	g := &Generator{cfg: cfg, log: log, rec: rec}
	var err error
	// Each client names itself in the log: the producer's account of a
	// stall must not read as the notification consumer's.
	kopts := func(role string) []kgo.Opt {
		return wire.ClientOpts(cfg.Kafka.Brokers, cfg.Dial, log.With("kafkaClient", role))
	}
	// ml-api-adapter's producer (librdkafka defaults, see wire/mojaloop.go);
	// a transfer still gives up on its notification after cfg.Timeout. One
	// produce request in flight per broker: see wire.ClientMaxInFlight.
	g.prod, err = kgo.NewClient(append(append(kopts("load-producer"), wire.ProducerOpts()...),
		kgo.ClientID("chaosloop-load"),
		kgo.MaxBufferedRecords(1<<16),
		kgo.MaxProduceRequestsInflightPerBroker(wire.ClientMaxInFlight),
	)...)
	if err != nil {
		return nil, err
	}
	g.notes, err = startNotifications(log, append(kopts("load-notifications"), kgo.ClientID("chaosloop-load-notifications")))
	if err != nil {
		g.Close()
		return nil, err
	}
	ropts := &goredis.FailoverOptions{
		MasterName:      cfg.Redis.MasterName,
		SentinelAddrs:   cfg.Redis.Sentinels,
		Password:        cfg.Redis.Password,
		Protocol:        2,
		DisableIdentity: true, // CLIENT SETINFO is Redis 7.2+
		DialTimeout:     time.Second,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		PoolSize:        min(cfg.MaxInFlight, 512),
		PoolTimeout:     3 * time.Second,
		MaxRetries:      -1, // a retried SET NX would report the key as a duplicate
	}
	if cfg.Dial != nil {
		ropts.Dialer = cfg.Dial
	}
	g.redis = goredis.NewFailoverClient(ropts)
	if g.cfg.BulkShare > 0 {
		g.bulk, err = newBulkWriter(ctx, log, cfg.Docstore.URIs, cfg.Dial, cfg.Timeout)
		if err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

// Close releases every client.
func (g *Generator) Close() {
	if g.notes != nil {
		g.notes.close()
	}
	if g.prod != nil {
		g.prod.Close()
	}
	if g.redis != nil {
		g.redis.Close()
	}
	if g.bulk != nil {
		g.bulk.close()
	}
}

// Stats are the live counters (valid during and after Run).
func (g *Generator) Stats() *Stats { return &g.stats }

// arrivalPlan is one arrival as the seeded plan decides it.
type arrivalPlan struct {
	id           string
	payer, payee string
	amount       int64
	bulk         bool
}

// Run sends the load and returns once the arrivals are over and every
// transfer completed (or timed out). Ending ctx stops it early; transfers in
// flight are then recorded as unknown.
func (g *Generator) Run(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, 0x6c6f6164)) // explicit source: --seed alone decides
	parts := g.cfg.Participants
	plan := func(i int64) arrivalPlan {
		a := arrivalPlan{id: fmt.Sprintf("%s-%08d", g.cfg.RunID, i)}
		payer := rng.IntN(len(parts))
		payee := rng.IntN(len(parts) - 1)
		if payee >= payer {
			payee++
		}
		a.payer, a.payee = parts[payer], parts[payee]
		a.amount = 1 + rng.Int64N(g.cfg.MaxAmount)
		a.bulk = rng.Float64() < g.cfg.BulkShare
		return a
	}
	work := func(ctx context.Context, vu int, a arrivalPlan) {
		if a.bulk {
			g.bulkTransfer(ctx, vu+1, a)
			return
		}
		g.transfer(ctx, vu+1, a)
	}
	dropped := func(a arrivalPlan) {
		op := history.OpTransfer
		if a.bulk {
			op = history.OpBulk
		}
		g.add(history.Event{Type: history.Dropped, Op: op, ID: a.id, Payer: a.payer, Payee: a.payee, Amount: a.amount, Currency: g.cfg.Currency})
	}
	return arrival.Run(ctx, arrival.Config{Rate: g.cfg.Rate, Duration: g.cfg.Duration, Extended: g.Until, VUs: g.cfg.MaxInFlight}, &g.stats.Stats, plan, work, dropped)
}

func (g *Generator) add(e history.Event) {
	if err := g.rec.Add(e); err != nil {
		g.log.Error("history", "err", err)
	}
}

// transfer runs one transfer through the pipeline.
func (g *Generator) transfer(ctx context.Context, proc int, a arrivalPlan) {
	inv := history.Event{Type: history.Invoke, Op: history.OpTransfer, ID: a.id, Process: proc,
		Payer: a.payer, Payee: a.payee, Amount: a.amount, Currency: g.cfg.Currency}
	g.add(inv)
	done := func(typ, errText string) {
		e := history.Event{Type: typ, Op: history.OpTransfer, ID: a.id, Process: proc, Error: errText}
		switch typ {
		case history.OK:
			g.stats.Acknowledged.Add(1)
		case history.Fail:
			g.stats.Rejected.Add(1)
		default:
			g.stats.Unknown.Add(1)
		}
		g.add(e)
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()

	// 1. Duplicate check.
	svc := g.cfg.Redis.Service
	g.add(history.Event{Type: history.Invoke, Op: history.OpRedisSet, ID: a.id, Process: proc, Service: svc})
	fresh, err := g.redis.SetNX(ctx, wire.DedupeKeyPrefix+a.id, g.cfg.RunID, 0).Result()
	switch {
	case err != nil:
		g.add(history.Event{Type: history.Info, Op: history.OpRedisSet, ID: a.id, Process: proc, Service: svc, Error: err.Error()})
		// Never sent to the ledger: the transfer definitely did not happen.
		done(history.Fail, "duplicate check failed: "+err.Error())
		return
	case !fresh:
		g.add(history.Event{Type: history.Fail, Op: history.OpRedisSet, ID: a.id, Process: proc, Service: svc, Error: "key exists"})
		done(history.Fail, "duplicate transfer id")
		return
	}
	g.add(history.Event{Type: history.OK, Op: history.OpRedisSet, ID: a.id, Process: proc, Service: svc})

	// 2. Prepare. Wait for the notification before sending, so it cannot
	// arrive unseen.
	wait := g.notes.expect(a.id)
	defer g.notes.forget(a.id)
	rec := &kgo.Record{Topic: wire.TopicPrepare, Key: []byte(a.payer), Value: wire.Encode(wire.Prepare{
		TransferID: a.id, Payer: a.payer, Payee: a.payee, Amount: a.amount, Currency: g.cfg.Currency})}
	g.add(history.Event{Type: history.Invoke, Op: history.OpProduce, ID: a.id, Process: proc, Topic: wire.TopicPrepare})
	if err := g.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		g.add(history.Event{Type: history.Info, Op: history.OpProduce, ID: a.id, Process: proc, Topic: wire.TopicPrepare, Error: err.Error()})
		// The broker may have written it: unknown, never "fail".
		done(history.Info, "produce: "+err.Error())
		return
	}
	g.add(history.Event{Type: history.OK, Op: history.OpProduce, ID: a.id, Process: proc, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset})

	// 3. Notification.
	select {
	case n := <-wait:
		switch n.State {
		case wire.StateCommitted:
			done(history.OK, "")
		case wire.StateRejected:
			done(history.Fail, "rejected: "+n.Reason)
		default:
			done(history.Info, "notification with state "+n.State)
		}
	case <-ctx.Done():
		done(history.Info, "no notification: "+ctx.Err().Error())
	}
}

// bulkTransfer stores one bulk transfer in the document store.
func (g *Generator) bulkTransfer(ctx context.Context, proc int, a arrivalPlan) {
	svc := g.cfg.Docstore.Service
	ev := history.Event{Op: history.OpBulk, ID: a.id, Process: proc, Service: svc}
	inv := ev
	inv.Type, inv.Payer, inv.Payee, inv.Amount, inv.Currency = history.Invoke, a.payer, a.payee, a.amount, g.cfg.Currency
	g.add(inv)
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	err := g.bulk.insert(ctx, bulkDoc{ID: a.id, Payer: a.payer, Payee: a.payee, Amount: a.amount, Currency: g.cfg.Currency, RunID: g.cfg.RunID})
	if err != nil {
		// A write that timed out may have committed: unknown.
		ev.Type, ev.Error = history.Info, err.Error()
		g.add(ev)
		return
	}
	g.stats.Bulk.Add(1)
	ev.Type = history.OK
	g.add(ev)
}
