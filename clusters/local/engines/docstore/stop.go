package docstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Grace periods before SIGKILL. Generous: on a loaded machine Patroni's
// shutdown (stop PostgreSQL, clean its DCS keys) takes seconds, not ms.
const (
	ferretGrace   = 30 * time.Second
	patroniGrace  = 60 * time.Second
	postgresGrace = 60 * time.Second
	etcdGrace     = 30 * time.Second
	// killWait bounds the wait after SIGKILL; an exiting process with a
	// large address space can take a while to tear down when CPU-starved.
	killWait = time.Minute
	// pollEvery is slow on purpose: each poll scans /proc for children.
	pollEvery = 100 * time.Millisecond
)

// gone reports whether process pid (with start time ticks, 0 = unknown) has
// ended: no such process, the PID reused, or every thread dead (see
// proc.Record.Alive: a zombie leader with live threads is not gone).
func gone(pid int, ticks uint64) bool {
	return !(&proc.Record{PID: pid, StartTicks: ticks}).Alive()
}

// procTable maps parent PID to children (with start ticks), from one scan
// of /proc.
func procTable() map[int][]*proc.Record {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]*proc.Record{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := proc.StatFields("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ticks, _ := strconv.ParseUint(f[19], 10, 64)
		kids[ppid] = append(kids[ppid], &proc.Record{Spec: proc.Spec{Name: "child of " + strconv.Itoa(ppid)}, PID: pid, StartTicks: ticks})
	}
	return kids
}

// endTree sends sig to each of roots and waits up to grace until they, and
// every descendant they had meanwhile (found by parent PID while the
// parent lives: an orphan loses that link), are gone; then SIGKILLs what is
// left and waits for that too. Descendants get no signal of their own
// before the SIGKILL: their parent (PostgreSQL's postmaster, Patroni)
// shuts them down. skip excludes descendants that are ended separately.
// It returns only when every one is gone, or with an error naming those
// still alive.
func endTree(ctx context.Context, roots []*proc.Record, sig syscall.Signal, grace time.Duration, skip func(pid int) bool) error {
	var set []*proc.Record
	has := map[int]bool{}
	for _, r := range roots {
		if gone(r.PID, r.StartTicks) {
			continue
		}
		set = append(set, r)
		has[r.PID] = true
		signal(r, syscall.SIGCONT) // a paused process cannot exit
		signal(r, sig)
	}
	deadline := time.Now().Add(grace)
	killed := false
	for {
		if len(set) == 0 {
			return nil
		}
		kids := procTable()
		for i := 0; i < len(set); i++ { // set grows while walking it
			if gone(set[i].PID, set[i].StartTicks) {
				continue
			}
			for _, k := range kids[set[i].PID] {
				if !has[k.PID] && (skip == nil || !skip(k.PID)) {
					set = append(set, k)
					has[k.PID] = true
				}
			}
		}
		set = slices.DeleteFunc(set, func(r *proc.Record) bool { return gone(r.PID, r.StartTicks) })
		if len(set) == 0 {
			return nil
		}
		if !killed && (time.Now().After(deadline) || ctx.Err() != nil) {
			// Out of patience (or time): what is left goes now, even
			// when ctx has ended, so nothing outlives Stop silently.
			for _, r := range set {
				signal(r, syscall.SIGCONT)
				signal(r, syscall.SIGKILL)
			}
			killed = true
			deadline = time.Now().Add(killWait)
		} else if killed && time.Now().After(deadline) {
			var left []string
			for _, r := range set {
				left = append(left, fmt.Sprintf("%s (pid %d)", r.Name, r.PID))
			}
			return fmt.Errorf("still running %s after SIGKILL: %s", killWait, strings.Join(left, ", "))
		}
		time.Sleep(pollEvery)
	}
}

// signal sends sig to r's process if it is still that process (same start
// time: never a reused PID) and not gone. Not r.Signal: that takes a
// zombie leader with live threads for ended and would not signal it.
func signal(r *proc.Record, sig syscall.Signal) {
	if !gone(r.PID, r.StartTicks) {
		_ = syscall.Kill(r.PID, sig)
	}
}

// stopProc ends a recorded process (SIGTERM, SIGKILL after grace) with its
// descendants, waits until all are gone and forgets the record. A process
// of a Launcher other than the host's (a pod) ends with its descendants.
func stopProc(ctx context.Context, c *engines.Cluster, name string, grace time.Duration, skip func(pid int) bool) error {
	if c.Launcher != nil {
		return c.Launcher.Stop(ctx, name, grace)
	}
	r, err := proc.Load(c.StateDir, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := endTree(ctx, []*proc.Record{r}, syscall.SIGTERM, grace, skip); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return proc.Forget(c.StateDir, name)
}

// postmaster returns member m's running postmaster, read from its
// postmaster.pid: it is not a recorded process (Patroni starts it detached),
// and outlives a Patroni that was SIGKILLed. nil when none runs.
func postmaster(m engines.Member) *proc.Record {
	p := memberPaths(m)
	b, err := os.ReadFile(p.pgData + "/postmaster.pid")
	if err != nil {
		return nil // not running (or never initialised)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || !isPostmaster(pid, p.pgData) {
		return nil // stale file of a crashed server
	}
	ticks, err := proc.StartTicks(pid)
	if err != nil {
		return nil
	}
	return &proc.Record{Spec: proc.Spec{Name: procName(m, "postgres")}, PID: pid, StartTicks: ticks}
}

// stopPostgres fast-shuts down member m's PostgreSQL if it still runs
// (SIGINT is pg_ctl's "-m fast"), SIGKILLs it and its children after the
// grace, and waits until every one of them is gone.
func stopPostgres(ctx context.Context, m engines.Member) error {
	pm := postmaster(m)
	if pm == nil {
		return nil
	}
	if err := endTree(ctx, []*proc.Record{pm}, syscall.SIGINT, postgresGrace, nil); err != nil {
		return fmt.Errorf("%s: stop PostgreSQL: %w", m.Name, err)
	}
	return nil
}

// isPostmaster: pid is a postgres whose command line names dataDir.
func isPostmaster(pid int, dataDir string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 0 && strings.HasSuffix(args[0], "postgres") && strings.Contains(string(b), dataDir)
}

// notPostmaster keeps member m's postmaster out of Patroni's descendants:
// Patroni starts it through a short-lived child, and stopPostgres shuts it
// down gracefully rather than with the SIGKILL a descendant gets.
func notPostmaster(m engines.Member) func(pid int) bool {
	dataDir := memberPaths(m).pgData
	return func(pid int) bool { return isPostmaster(pid, dataDir) }
}
