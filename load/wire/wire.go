// Package wire is what the workload's client and the Mojaloop-shaped
// handlers exchange over Kafka: the topics (named as central-ledger names
// them) and the JSON messages on them. central-ledger carries FSPIOP
// requests wrapped in an event envelope; these messages keep only what the
// ledger and the checks need.
package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// Topics, as central-ledger names them.
const (
	TopicPrepare      = "topic-transfer-prepare"
	TopicPosition     = "topic-transfer-position"
	TopicFulfil       = "topic-transfer-fulfil"
	TopicNotification = "topic-notification-event"
)

// Topics is every topic the pipeline uses, for creating them up front.
var Topics = []string{TopicPrepare, TopicPosition, TopicFulfil, TopicNotification}

// ClientOpts are the franz-go options the workload's client and handlers
// share: librdkafka's defaults as central-ledger and ml-api-adapter run
// with them (see mojaloop.go), and the client's own account of connections
// and group sessions in the log (what explains a stall after a fault), and
// librdkafka's reconnect backoff (see reconnectBackoff).
// dial opens every connection (nil: the default dialer).
func ClientOpts(brokers []string, dial func(ctx context.Context, network, address string) (net.Conn, error), log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.WithLogger(kslog.New(log.With("client", "kafka"))),
		kgo.SeedBrokers(brokers...),
		kgo.DialTimeout(DialTimeout),
		kgo.RequestTimeoutOverhead(SocketTimeout - ProduceRequestTimeout),
		kgo.MetadataMinAge(MetadataFastRefresh),
		kgo.MetadataMaxAge(MetadataRefresh),
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	opts = append(opts, kgo.Dialer(reconnectBackoff(dialTimeoutsAsFailures(dial), time.Now)))
	return opts
}

// dialTimeoutsAsFailures reports a dial that timed out as a plain dial
// failure (a *net.OpError whose Timeout() is false; errors.Is still finds
// the cause). franz-go (v1.22) refreshes metadata after a failed dial to a
// partition's leader only when the failure is not a timeout: on a timeout
// it keeps the records on that broker and dials it again. A broker that
// lost power or whose site is cut off is only ever a timeout (packets are
// dropped silently), so its records stayed there until the fault healed,
// although Kafka had moved the leaders within seconds (measured in the
// quickstart: the handlers' produce acks waited 26 s, from the rack
// power-off until its heal, while the controller fenced the broker after
// 10 s; the dc3 isolation stalled every handler for its whole 30 s the
// same way). librdkafka, the client central-ledger and ml-api-adapter
// use, marks the broker down and refreshes metadata on any connection
// failure; this makes franz-go do the same.
func dialTimeoutsAsFailures(dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		if err == nil {
			return c, nil
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: dialFailed{err}}
		}
		return nil, err
	}
}

// dialFailed wraps a dial error without its Timeout method.
type dialFailed struct{ err error }

func (d dialFailed) Error() string { return "dial failed: " + d.err.Error() }
func (d dialFailed) Unwrap() error { return d.err }

// ProducerOpts are the producer settings both sides use (see mojaloop.go):
// acks=all (central-ledger's request.required.acks; ml-api-adapter's
// prepare producer uses acks=1, but the checks' claim "no acknowledged
// record lost" and analyze's rule for Kafka writes need acks=all), no
// idempotence, librdkafka's linger, in-flight limit, request and delivery
// timeouts.
func ProducerOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(Linger),
		kgo.ProduceRequestTimeout(ProduceRequestTimeout),
		kgo.RecordDeliveryTimeout(DeliveryTimeout),
	}
	if !Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(MaxInFlight))
	}
	return opts
}

// Transfer states the ledger and the notifications use. A refused prepare
// ends ABORTED (central-ledger: ABORTED_REJECTED, reason PAYER_LIMIT_ERROR);
// the notification for it says REJECTED, as the FSPIOP callback would.
const (
	StateReceived  = "RECEIVED"
	StateReserved  = "RESERVED"
	StateCommitted = "COMMITTED"
	StateAborted   = "ABORTED"
	StateRejected  = "REJECTED"
)

// Prepare is a transfer request (POST /transfers) on TopicPrepare, and the
// position event on TopicPosition.
type Prepare struct {
	TransferID string `json:"transferId"`
	Payer      string `json:"payerFsp"`
	Payee      string `json:"payeeFsp"`
	// Amount in minor units.
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// State is set on position events only (RESERVED or ABORTED).
	State string `json:"state,omitempty"`
}

// Fulfil is the payee's fulfilment (PUT /transfers/{id}) on TopicFulfil.
type Fulfil struct {
	TransferID string `json:"transferId"`
	// Fulfilment stands for the ILP fulfilment the payee returns.
	Fulfilment string `json:"fulfilment"`
}

// Notification tells the payer the outcome, on TopicNotification: COMMITTED
// or REJECTED.
type Notification struct {
	TransferID string `json:"transferId"`
	State      string `json:"state"`
	Reason     string `json:"reason,omitempty"`
}

// Encode marshals a message (they cannot fail to marshal).
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("wire: %v", err))
	}
	return b
}

// Decode unmarshals a message and checks it names a transfer.
func Decode[T Prepare | Fulfil | Notification](b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("wire: %w", err)
	}
	var id string
	switch m := any(v).(type) {
	case Prepare:
		id = m.TransferID
	case Fulfil:
		id = m.TransferID
	case Notification:
		id = m.TransferID
	}
	if id == "" {
		return v, fmt.Errorf("wire: message without transferId: %.100s", b)
	}
	return v, nil
}

// Where the client's other writes go, for the final-state readers.
const (
	// DedupeKeyPrefix + transfer id is the Redis duplicate-check key.
	DedupeKeyPrefix = "transfer-dedupe:"
	// BulkDatabase and BulkCollection hold bulk transfers in the document
	// store (create the collection before traffic: docstore.Prepare).
	BulkDatabase   = "mojaloop"
	BulkCollection = "bulkTransfers"
)
