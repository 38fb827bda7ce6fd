package load

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/load/wire"
)

// notifications is the one consumer of topic-transfer-notification,
// handing each notification to the transfer waiting for it.
type notifications struct {
	log    *slog.Logger
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	waiting map[string]chan wire.Notification
}

func startNotifications(log *slog.Logger, opts []kgo.Opt) (*notifications, error) {
	// From a moment before now by timestamp: however late the first fetch,
	// no notification of a transfer sent from now on is skipped.
	from := time.Now().Add(-5 * time.Second).UnixMilli()
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(wire.TopicNotification),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(from)),
		kgo.FetchMaxWait(wire.FetchMaxWait), // ml-api-adapter's notification consumer: librdkafka's default
	)...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifications{log: log, cl: cl, cancel: cancel, done: make(chan struct{}), waiting: map[string]chan wire.Notification{}}
	go n.run(ctx)
	return n, nil
}

func (n *notifications) run(ctx context.Context) {
	defer close(n.done)
	for {
		fetches := n.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			n.log.Debug("notifications: fetch", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			msg, err := wire.Decode[wire.Notification](r.Value)
			if err != nil {
				n.log.Warn("notifications: undecodable record", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			n.mu.Lock()
			ch, ok := n.waiting[msg.TransferID]
			if ok {
				// Redelivered notifications of the same transfer: first wins.
				delete(n.waiting, msg.TransferID)
			}
			n.mu.Unlock()
			if ok {
				ch <- msg // buffered: never blocks
			}
		})
	}
}

// expect registers a transfer's notification before its prepare is sent.
func (n *notifications) expect(id string) <-chan wire.Notification {
	ch := make(chan wire.Notification, 1)
	n.mu.Lock()
	n.waiting[id] = ch
	n.mu.Unlock()
	return ch
}

// forget drops a registration (after a timeout or an error).
func (n *notifications) forget(id string) {
	n.mu.Lock()
	delete(n.waiting, id)
	n.mu.Unlock()
}

func (n *notifications) close() {
	n.cancel()
	<-n.done
	n.cl.Close()
}
