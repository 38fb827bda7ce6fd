package runner

import (
	"context"
	"log/slog"
	"strings"
)

// runLogHandler keeps the Kafka clients' debug account of connections,
// metadata refreshes, leader moves and retries in run.log — what explains
// a producer that kept a dead leader's partitions (the quickstart's
// power-off lost 1,180 transfers that way in 2 of 3 runs, and the Info
// lines did not say why) — but not their per-request lines ("wrote
// Produce v13", "read Fetch v18": 99 % of the volume, ~40,000 lines a
// minute at 100 transfers/s). Other requests' lines stay: "wrote
// Metadata" names the broker a stalled metadata refresh went to.
type runLogHandler struct{ slog.Handler }

// chatter are franz-go's per-request debug messages, by prefix.
var chatter = []string{"wrote Produce", "read Produce", "wrote Fetch", "read Fetch", "retry batch is not the first batch", "retry batches processed"}

func newRunLogHandler(h slog.Handler) slog.Handler { return runLogHandler{h} }

func (h runLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		for _, p := range chatter {
			if strings.HasPrefix(r.Message, p) {
				return nil
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return runLogHandler{h.Handler.WithAttrs(as)}
}

func (h runLogHandler) WithGroup(name string) slog.Handler {
	return runLogHandler{h.Handler.WithGroup(name)}
}
