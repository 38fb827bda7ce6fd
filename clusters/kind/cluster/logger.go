package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger is kind's logger on a slog.Logger: kind's V(0) user-facing
// lines at info, deeper levels at debug.
type kindLogger struct{ log *slog.Logger }

func (l kindLogger) Warn(msg string)                { l.log.Warn("kind: " + msg) }
func (l kindLogger) Warnf(format string, a ...any)  { l.Warn(fmt.Sprintf(format, a...)) }
func (l kindLogger) Error(msg string)               { l.log.Error("kind: " + msg) }
func (l kindLogger) Errorf(format string, a ...any) { l.Error(fmt.Sprintf(format, a...)) }
func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	lv := slog.LevelInfo
	if level > 0 {
		lv = slog.LevelDebug
	}
	return infoLogger{log: l.log, level: lv}
}

type infoLogger struct {
	log   *slog.Logger
	level slog.Level
}

func (l infoLogger) Info(msg string) {
	l.log.Log(context.Background(), l.level, "kind: "+strings.TrimSpace(msg))
}
func (l infoLogger) Infof(format string, a ...any) { l.Info(fmt.Sprintf(format, a...)) }
func (l infoLogger) Enabled() bool                 { return l.log.Enabled(context.Background(), l.level) }
