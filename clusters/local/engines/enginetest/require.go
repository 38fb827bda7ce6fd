package enginetest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireInstalled is what every lab test checks first: root; then, in CI
// (CHAOSLOOP_REQUIRE_LAB=1), that install (when set) succeeds; then that
// every tool is there — a name is looked up in PATH, an absolute path must
// exist. What is missing skips the test, or fails it in CI.
func RequireInstalled(tb testing.TB, install func(context.Context) error, tools ...string) {
	tb.Helper()
	RequireRoot(tb)
	if install != nil && os.Getenv("CHAOSLOOP_REQUIRE_LAB") == "1" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := install(ctx); err != nil {
			tb.Fatalf("install: %v", err)
		}
	}
	var missing []string
	for _, tool := range tools {
		var err error
		if strings.HasPrefix(tool, "/") {
			_, err = os.Stat(tool)
		} else {
			_, err = exec.LookPath(tool)
		}
		if err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		RequireLab(tb, "not installed: "+strings.Join(missing, ", "))
	}
}

// Log is a test's logger: info and up, in the test's own output (shown
// with -v or when it fails). Only for tests whose goroutines end with
// them: logging after a test ended panics.
func Log(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// ProcessLog is the logger of a test whose goroutines may outlive it (a
// run, a lab): info on stderr with -v, else nothing.
func ProcessLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
