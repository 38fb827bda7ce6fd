package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EvidenceRoot is the one place a failing lab or runner test leaves what
// it ran: its run directory (history, report, plan), the lab's engine and
// handler logs, and for engine tests the members' data and log
// directories. Each test gets EvidenceRoot/<test>-<time>-<random>/; it is
// removed when the test passes and kept, with its path in the test's
// output, when it fails. Not under os.TempDir: /tmp may be a tmpfs that a
// reboot empties, and the engines' own users (mysql, redis, postgres) must
// traverse it.
const EvidenceRoot = "/var/tmp/chaosloop-test-runs"

// Evidence is one test's evidence directory.
type Evidence struct {
	// Dir is EvidenceRoot/<test>-<time>-<random>, mode 0755.
	Dir string
	tb  testing.TB
}

// KeepEvidenceEnv, set to anything, keeps a passing test's evidence too
// (to study a run that passed with something worth a look).
const KeepEvidenceEnv = "CHAOSLOOP_KEEP_EVIDENCE"

// NewEvidence makes the test's evidence directory. Call it before
// anything that registers a cleanup writing into it (a lab's teardown,
// an engine cluster's kill): cleanups run last-in first-out, so the
// directory is judged after they have run.
func NewEvidence(tb testing.TB) *Evidence {
	tb.Helper()
	if err := os.MkdirAll(EvidenceRoot, 0o755); err != nil {
		tb.Fatal(err)
	}
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(tb.Name())
	dir, err := os.MkdirTemp(EvidenceRoot, name+"-"+time.Now().Format("20060102-150405")+"-")
	if err != nil {
		tb.Fatal(err)
	}
	// Engines running as their own users write logs below it.
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	e := &Evidence{Dir: dir, tb: tb}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("FAILED: evidence (run directory, handler and engine logs) kept in %s", dir)
			return
		}
		if os.Getenv(KeepEvidenceEnv) != "" {
			tb.Logf("evidence kept in %s (%s is set)", dir, KeepEvidenceEnv)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return e
}

// Sub is a directory under Dir (made, mode 0755).
func (e *Evidence) Sub(name string) string {
	e.tb.Helper()
	d := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		e.tb.Fatal(err)
	}
	return d
}

// Save moves src (a lab's log directory, which its teardown would delete)
// to Dir/name when the test has failed; a passing test keeps nothing. Call
// it in a cleanup just before the teardown. Processes still writing keep
// their open files, so moved logs include their last lines; across file
// systems src is copied instead.
func (e *Evidence) Save(src, name string) {
	if !e.tb.Failed() {
		return
	}
	dst := filepath.Join(e.Dir, name)
	if err := os.Rename(src, dst); err == nil {
		return
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		e.tb.Logf("evidence: keeping %s: %v: %s", src, err, out)
	}
}

// WorkDir is a short scratch directory (mode 0755, so the engines' own
// users can traverse it) for a lab root or an engine cluster: unix socket
// paths under it must stay below 108 bytes, which the evidence directory's
// long name does not allow. When the test fails it is copied into Dir/name
// (data and logs), then removed either way. Call it after NewEvidence.
func (e *Evidence) WorkDir(name string) string {
	e.tb.Helper()
	dir, err := os.MkdirTemp("", "cl-")
	if err != nil {
		e.tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() {
		e.Save(dir, name)
		_ = os.RemoveAll(dir)
	})
	return dir
}

// SharedEvidence is NewEvidence for engines a whole test package shares
// (started once, stopped by TestMain): it returns the directory and a
// finish function for TestMain, which removes it when every test passed
// (code 0) and otherwise keeps it and prints its path on stderr.
func SharedEvidence(pkg string) (dir string, finish func(code int), err error) {
	if err := os.MkdirAll(EvidenceRoot, 0o755); err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp(EvidenceRoot, pkg+"-"+time.Now().Format("20060102-150405")+"-")
	if err != nil {
		return "", nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", nil, err
	}
	return dir, func(code int) {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "FAILED: evidence (engine data and logs) kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}, nil
}
