// Package wire is what the workload's client and the Mojaloop-shaped
// handlers exchange over Kafka: the topics (named as central-ledger names
// them) and the JSON messages on them. central-ledger carries FSPIOP
// requests wrapped in an event envelope; these messages keep only what the
// ledger and the checks need.
package wire

import (
	"context"
	"encoding/json"
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
// share: short dial and request timeouts and fresh metadata, so that a
// client notices a lost broker and a moved leader within seconds, and the
// client's own account of connections and group sessions in the log (what
// explains a stall after a fault). dial opens every connection (nil: the
// default dialer).
func ClientOpts(brokers []string, dial func(ctx context.Context, network, address string) (net.Conn, error), log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.WithLogger(kslog.New(log.With("client", "kafka"))),
		kgo.SeedBrokers(brokers...),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(3 * time.Second),
		kgo.MetadataMinAge(500 * time.Millisecond),
		kgo.MetadataMaxAge(10 * time.Second),
	}
	if dial != nil {
		opts = append(opts, kgo.Dialer(dial))
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
