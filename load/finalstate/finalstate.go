// Package finalstate reads what the engines hold after the run healed and
// converged — the ledger, the duplicate-check keys, the bulk transfers,
// each replica's digest — into history.Final, and consumes the prepare
// topic from the beginning into kafka-consume events for the round-trip
// check. Every part that cannot be read is left nil and named in
// Final.ReadErrors (see reports/README.md), never guessed.
package finalstate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/load/ledger"
	"github.com/chaosloop/chaosloop/load/wire"
)

// Sources say where each part lives. Members are in member order (the
// digests' Member numbers).
type Sources struct {
	// LedgerService is the Galera service; LedgerDSNs one DSN per member.
	LedgerService string
	LedgerDSNs    []string
	// Redis: Sentinel access to the current primary, and each member's
	// data node address.
	Redis        load.Redis
	RedisMembers []string
	// Docstore: one FerretDB URI per member (optional).
	Docstore load.Docstore
	// Kafka for the consume-all.
	Kafka load.Kafka
	// Dial opens every connection (nil: net.Dialer).
	Dial lab.DialFunc
	// Timeout per part (default 60 s).
	Timeout time.Duration
}

func (s Sources) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 60 * time.Second
}

// Read reads the final state. It does not fail: what it cannot read is in
// ReadErrors.
func Read(ctx context.Context, log *slog.Logger, src Sources) *history.Final {
	f := &history.Final{}
	fail := func(part string, err error) {
		if f.ReadErrors == nil {
			f.ReadErrors = map[string]string{}
		}
		f.ReadErrors[part] = err.Error()
		log.Warn("final state: cannot read", "part", part, "err", err)
	}
	part := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, src.timeout()) }

	lo := ledger.Options{DSNs: src.LedgerDSNs, Dial: src.Dial, Log: log}
	pctx, cancel := part()
	ledger.ReadFinal(pctx, lo, f)
	f.Replicas = append(f.Replicas, ledger.Digests(pctx, lo, src.LedgerService)...)
	cancel()
	for k, v := range f.ReadErrors {
		log.Warn("final state: cannot read", "part", k, "err", v)
	}

	pctx, cancel = part()
	if keys, err := redisKeys(pctx, src); err != nil {
		fail("redisKeys", err)
	} else {
		f.RedisKeys = keys
	}
	f.Replicas = append(f.Replicas, redisDigests(pctx, src)...)
	cancel()

	if len(src.Docstore.URIs) > 0 {
		pctx, cancel = part()
		if ids, err := bulkIDs(pctx, src); err != nil {
			fail("bulk", err)
		} else {
			f.Bulk = ids
		}
		f.Replicas = append(f.Replicas, docstoreDigests(pctx, src)...)
		cancel()
	} else {
		f.Bulk = map[string]bool{} // no document store: read, empty
	}
	return f
}

func redisOptions(src Sources) *goredis.FailoverOptions {
	o := &goredis.FailoverOptions{
		MasterName:      src.Redis.MasterName,
		SentinelAddrs:   src.Redis.Sentinels,
		Password:        src.Redis.Password,
		Protocol:        2,
		DisableIdentity: true,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     5 * time.Second,
	}
	if src.Dial != nil {
		o.Dialer = src.Dial
	}
	return o
}

// scanKeys lists the duplicate-check keys of one Redis node.
func scanKeys(ctx context.Context, c goredis.UniversalClient) ([]string, error) {
	var out []string
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, wire.DedupeKeyPrefix+"*", 5000).Result()
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

// redisKeys reads every duplicate-check key from the current primary.
func redisKeys(ctx context.Context, src Sources) (map[string]bool, error) {
	c := goredis.NewFailoverClient(redisOptions(src))
	defer c.Close()
	keys, err := scanKeys(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("redis primary: %w", err)
	}
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[strings.TrimPrefix(k, wire.DedupeKeyPrefix)] = true
	}
	return out, nil
}

// xorDigest is an order-independent digest of a set of strings.
func xorDigest(items []string) uint64 {
	var x uint64
	for _, s := range items {
		h := fnv.New64a()
		h.Write([]byte(s))
		x ^= h.Sum64()
	}
	return x
}

// redisDigests: per member, the number of keys and a digest of the
// duplicate-check keys it holds (replicas included: they serve reads).
func redisDigests(ctx context.Context, src Sources) []history.ReplicaView {
	out := make([]history.ReplicaView, len(src.RedisMembers))
	for i, addr := range src.RedisMembers {
		out[i] = history.ReplicaView{Service: src.Redis.Service, Member: i}
		o := &goredis.Options{Addr: addr, Password: src.Redis.Password, Protocol: 2, DisableIdentity: true,
			DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: 1}
		if src.Dial != nil {
			o.Dialer = src.Dial
		}
		c := goredis.NewClient(o)
		n, err := c.DBSize(ctx).Result()
		var keys []string
		if err == nil {
			keys, err = scanKeys(ctx, c)
		}
		c.Close()
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].Digest = fmt.Sprintf("keys=%d dedupe=%d/%016x", n, len(keys), xorDigest(keys))
	}
	return out
}

func connectDocstore(ctx context.Context, uri string, dial lab.DialFunc) (*mongo.Collection, func(), error) {
	cl, err := mongo.Connect(ctx, load.MongoClientOptions(uri, dial))
	if err != nil {
		return nil, nil, err
	}
	return cl.Database(wire.BulkDatabase).Collection(wire.BulkCollection), func() { _ = cl.Disconnect(context.Background()) }, nil
}

// bulkIDs lists the bulk transfers through the first FerretDB that answers.
func bulkIDs(ctx context.Context, src Sources) (map[string]bool, error) {
	var errs []error
	for _, uri := range src.Docstore.URIs {
		ids, err := func() (map[string]bool, error) {
			coll, closeFn, err := connectDocstore(ctx, uri, src.Dial)
			if err != nil {
				return nil, err
			}
			defer closeFn()
			cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(5000))
			if err != nil {
				return nil, err
			}
			defer cur.Close(ctx)
			out := map[string]bool{}
			for cur.Next(ctx) {
				id, ok := cur.Current.Lookup("_id").StringValueOK()
				if ok {
					out[id] = true
				}
			}
			return out, cur.Err()
		}()
		if err == nil {
			return ids, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", uri, err))
	}
	return nil, errors.Join(errs...)
}

// docstoreDigests: per member, the count and an id digest through its own
// FerretDB. (Every FerretDB reads the one PostgreSQL leader, so this shows
// that each member's front end serves the same data.)
func docstoreDigests(ctx context.Context, src Sources) []history.ReplicaView {
	out := make([]history.ReplicaView, len(src.Docstore.URIs))
	for i, uri := range src.Docstore.URIs {
		out[i] = history.ReplicaView{Service: src.Docstore.Service, Member: i}
		d, err := func() (string, error) {
			coll, closeFn, err := connectDocstore(ctx, uri, src.Dial)
			if err != nil {
				return "", err
			}
			defer closeFn()
			cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(5000))
			if err != nil {
				return "", err
			}
			defer cur.Close(ctx)
			var ids []string
			for cur.Next(ctx) {
				if id, ok := cur.Current.Lookup("_id").StringValueOK(); ok {
					ids = append(ids, id)
				}
			}
			if err := cur.Err(); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s=%d/%016x", wire.BulkCollection, len(ids), xorDigest(ids)), nil
		}()
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].Digest = d
	}
	return out
}

// ConsumeAll reads topic (default topic-transfer-prepare) from the
// beginning to its end as of the call and records a kafka-consume ok event
// per record, with the transfer id. It returns the number of records, or an
// error when it could not reach the end of every partition (the events
// recorded so far stay).
func ConsumeAll(ctx context.Context, log *slog.Logger, src Sources, topic string, rec load.Recorder) (int, error) {
	if topic == "" {
		topic = wire.TopicPrepare
	}
	ctx, cancel := context.WithTimeout(ctx, src.timeout())
	defer cancel()
	opts := []kgo.Opt{
		kgo.SeedBrokers(src.Kafka.Brokers...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(3 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
	if src.Dial != nil {
		opts = append(opts, kgo.Dialer(src.Dial))
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	admCl.Close()
	if err != nil {
		return 0, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return 0, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{} // partition → end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return 0, nil
	}
	start := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		start[topic][p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(start))...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	var recErr error
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			var left []string
			for p, end := range want {
				left = append(left, fmt.Sprintf("%d (end %d)", p, end))
			}
			sort.Strings(left)
			return n, fmt.Errorf("kafka: consuming %s: %w; partitions not read to the end: %s", topic, ctx.Err(), strings.Join(left, ", "))
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Debug("consume-all: fetch", "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			e := history.Event{Type: history.OK, Op: history.OpConsume, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			if p, err := wire.Decode[wire.Prepare](r.Value); err == nil {
				e.ID = p.TransferID
			}
			if err := rec.Add(e); err != nil && recErr == nil {
				recErr = err
			}
			n++
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return n, recErr
}
