package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/load/wire"
)

// bulkDoc is a bulk transfer as stored (one individual transfer: the load
// is about durability, not about bulk processing).
type bulkDoc struct {
	ID       string `bson:"_id"`
	Payer    string `bson:"payerFsp"`
	Payee    string `bson:"payeeFsp"`
	Amount   int64  `bson:"amount"`
	Currency string `bson:"currency"`
	RunID    string `bson:"runId"`
}

// ContextDialer adapts a DialFunc to the mongo driver's dialer interface.
type contextDialer lab.DialFunc

func (d contextDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d(ctx, network, address)
}

// bulkWriter writes through one FerretDB at a time: each FerretDB is a
// standalone server to the driver (several in one URI would be dropped from
// the topology), so failover between them is done here.
type bulkWriter struct {
	log     *slog.Logger
	clients []*mongo.Client
	colls   []*mongo.Collection

	mu  sync.Mutex
	cur int
}

// MongoClientOptions are the driver options for one FerretDB endpoint.
func MongoClientOptions(uri string, dial lab.DialFunc) *options.ClientOptions {
	o := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(2 * time.Second).
		SetMaxPoolSize(256).
		SetRetryWrites(false) // a retried insert would hide an unknown outcome
	if dial != nil {
		o.SetDialer(contextDialer(dial))
	}
	return o
}

func newBulkWriter(ctx context.Context, log *slog.Logger, uris []string, dial lab.DialFunc, timeout time.Duration) (*bulkWriter, error) {
	w := &bulkWriter{log: log}
	for _, uri := range uris {
		cl, err := mongo.Connect(ctx, MongoClientOptions(uri, dial).SetTimeout(timeout))
		if err != nil {
			w.close()
			return nil, fmt.Errorf("load: document store %s: %w", uri, err)
		}
		w.clients = append(w.clients, cl)
		w.colls = append(w.colls, cl.Database(wire.BulkDatabase).Collection(wire.BulkCollection,
			options.Collection().SetWriteConcern(writeconcern.Majority())))
	}
	return w, nil
}

func (w *bulkWriter) insert(ctx context.Context, d bulkDoc) error {
	w.mu.Lock()
	i := w.cur
	w.mu.Unlock()
	_, err := w.colls[i].InsertOne(ctx, d)
	if err == nil || mongo.IsDuplicateKeyError(err) {
		return err
	}
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.HasErrorLabel("NetworkError") {
		// This FerretDB (or its node) is unreachable: the next arrival
		// tries the next one.
		w.mu.Lock()
		if w.cur == i {
			w.cur = (i + 1) % len(w.colls)
			w.log.Info("load: document store failover", "to", w.cur)
		}
		w.mu.Unlock()
	}
	return err
}

func (w *bulkWriter) close() {
	for _, cl := range w.clients {
		_ = cl.Disconnect(context.Background())
	}
}
