package engines

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Launcher starts and ends the processes of a cluster's members: on the
// lab host (Procs, the local lab) or as one Kubernetes pod per process
// (the kind backend), so that an engine's code runs its members either
// way. A process is named by its proc.Spec's Name, unique in the lab; the
// spec's command line, user, environment, directory and log are the same
// either way (a pod runs on the member's node with the host's network and
// its member's directories at the same paths).
type Launcher interface {
	// Start starts spec's process for member m and says where it runs
	// ("pid 1234", "pod chaosloop/etcd-1.etcd"), for logs.
	Start(ctx context.Context, m Member, spec proc.Spec) (string, error)
	// Alive reports whether the named process runs.
	Alive(ctx context.Context, name string) bool
	// Signal sends sig to the named process; os.ErrProcessDone when it
	// does not run.
	Signal(ctx context.Context, name string, sig syscall.Signal) error
	// Stop ends the named process (SIGTERM, SIGKILL after grace) and
	// returns once it is gone; nothing running is nothing to stop.
	Stop(ctx context.Context, name string, grace time.Duration) error
}

// Liveness is a Launcher that can tell that it could not find out
// whether a process runs (the API server it asks answered late or not at
// all) from the process not running.
type Liveness interface {
	Launcher
	// Live reports whether the named process runs; err when that could
	// not be found out, and then false says nothing.
	Live(ctx context.Context, name string) (bool, error)
}

// Alive reports whether the named process runs, and an error when that
// could not be found out: the engines' probes count such a member's
// state as unknown, not as a member down (a false "down, writes
// refused" of an etcd whose every member ran, on a busy 2-core k3s run).
func (c *Cluster) Alive(ctx context.Context, name string) (bool, error) {
	if l, ok := c.Launch().(Liveness); ok {
		return l.Live(ctx, name)
	}
	return c.Launch().Alive(ctx, name), nil
}

// NotRunning reports whether the named process of ms's member does not
// run, or whether it runs could not be found out, and then says which in
// ms: "not running", or TimedOut (no evidence of the member's state).
func (c *Cluster) NotRunning(ctx context.Context, ms *MemberStatus, name string) bool {
	alive, err := c.Alive(ctx, name)
	switch {
	case err != nil:
		ms.Detail, ms.TimedOut = "whether it runs is unknown: "+err.Error(), true
	case !alive:
		ms.Detail = "not running"
	}
	return !alive
}

// Launch is the cluster's Launcher: the local lab's processes unless one
// was set.
func (c *Cluster) Launch() Launcher {
	if c.Launcher != nil {
		return c.Launcher
	}
	return Procs{StateDir: c.StateDir}
}

// Procs runs members as processes on the lab host, recorded under StateDir
// (package proc): in the member's network namespace and cgroup.
type Procs struct {
	StateDir string
}

// Start starts spec's process with proc.Start.
func (p Procs) Start(_ context.Context, _ Member, spec proc.Spec) (string, error) {
	rec, err := proc.Start(p.StateDir, spec)
	if err != nil {
		return "", err
	}
	return "pid " + strconv.Itoa(rec.PID), nil
}

// Alive reports whether the recorded process still runs.
func (p Procs) Alive(_ context.Context, name string) bool {
	r, err := proc.Load(p.StateDir, name)
	return err == nil && r.Alive()
}

// Signal signals the recorded process.
func (p Procs) Signal(_ context.Context, name string, sig syscall.Signal) error {
	r, err := proc.Load(p.StateDir, name)
	if errors.Is(err, os.ErrNotExist) {
		return os.ErrProcessDone
	}
	if err != nil {
		return err
	}
	return r.Signal(sig)
}

// Stop stops the recorded process and forgets it.
func (p Procs) Stop(ctx context.Context, name string, grace time.Duration) error {
	return proc.StopRecorded(ctx, p.StateDir, name, grace)
}
