package docstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Prepare creates collections through one FerretDB before any traffic,
// then restarts the other running FerretDBs. Each FerretDB loads collection
// metadata once, on its first backend use (Start's ping), and never again:
// one that did not create a collection does not see it (reads come back
// empty) and inserting creates its table again (SQLSTATE 42P07). So
// collections must not be created through the service during traffic.
func (e *Engine) Prepare(ctx context.Context, c *engines.Cluster, db string, collections []string) error {
	// Retried as a whole until it goes through: right after Start, or
	// with leadership settling, a FerretDB may not reach a writable
	// PostgreSQL yet. Creating is idempotent (NamespaceExists).
	used := -1
	created := false
	err := engines.WaitFor(ctx, memberTimeout, time.Second, "docstore prepare: create collections", func(ctx context.Context) error {
		// The same FerretDB as in an earlier attempt when it answers: one
		// that did not create a collection does not see it.
		var err error
		from, found := max(used, 0), false
		for k := range c.Members {
			i := (from + k) % len(c.Members)
			if err = e.ping(ctx, c, i); err == nil {
				used, found = i, true
				break
			}
		}
		if !found {
			return fmt.Errorf("no FerretDB answers: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cl, err := e.connect(ctx, c, used)
		if err != nil {
			return err
		}
		defer cl.Disconnect(context.Background()) //nolint:errcheck
		have, err := cl.Database(db).ListCollectionNames(ctx, map[string]any{})
		if err != nil {
			return fmt.Errorf("list collections via %s: %w", c.Members[used].Name, err)
		}
		for _, coll := range collections {
			if slices.Contains(have, coll) {
				continue
			}
			// Set before trying: a create that reports an error may
			// still have created the table, and the retry then finds
			// it listed; the others must restart all the same.
			created = true
			if err := cl.Database(db).CreateCollection(ctx, coll); err != nil {
				var ce mongo.CommandError
				if errors.As(err, &ce) && ce.Code == 48 { // NamespaceExists
					continue
				}
				return fmt.Errorf("create %s.%s via %s: %w", db, coll, c.Members[used].Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	for i, m := range c.Members {
		name := procName(m, "ferretdb")
		if i == used || !running(ctx, c, name) {
			continue
		}
		if err := stopProc(ctx, c, name, ferretGrace, nil); err != nil {
			return err
		}
		if err := e.startFerretDB(ctx, c, i); err != nil {
			return err
		}
		if err := engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, m.Name+" FerretDB ping",
			func(ctx context.Context) error { return e.ping(ctx, c, i) }); err != nil {
			return err
		}
	}
	e.log.Info("docstore collections created; other FerretDBs restarted to load them", "db", db, "via", c.Members[used].Name)
	return nil
}
