package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

func workerName(ss *serviceState, i int) string { return ss.Cluster.Members[i].Name + ".worker" }

// StartWorkers records w as the worker of a stateless service and starts it
// on every member whose node has power. It is idempotent.
func (l *Lab) StartWorkers(ctx context.Context, service string, w lab.Worker) error {
	ss, err := l.service(service)
	if err != nil {
		return err
	}
	if ss.Engine != EngineNone {
		return fmt.Errorf("service %s is a %s service; workers run on stateless services", service, ss.Kind)
	}
	l.mu.Lock()
	ss.Worker = &w
	err = l.save()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	var errs []error
	for i := range ss.Cluster.Members {
		errs = append(errs, l.startWorker(ctx, ss, i))
	}
	return errors.Join(errs...)
}

// startWorker starts member i's worker through the service's launcher: a
// process in the member's namespace and cgroup on the local lab, a pod on
// the member's node on kind.
func (l *Lab) startWorker(ctx context.Context, ss *serviceState, i int) error {
	if ss.Worker == nil {
		return nil
	}
	m := ss.Cluster.Members[i]
	if !l.net.Powered(m.Node) {
		return nil
	}
	name := workerName(ss, i)
	ln := ss.Cluster.Launch()
	if ln.Alive(ctx, name) {
		return nil
	}
	w := *ss.Worker
	if ss.Cluster.Launcher != nil {
		staged, err := stageWorker(w, filepath.Join(m.DataDir, "worker"))
		if err != nil {
			return fmt.Errorf("worker of %s: %w", m.Name, err)
		}
		w = staged
	}
	args := slices.Clone(w.Args)
	if w.MemberFlag != "" {
		args = append(args, w.MemberFlag, fmt.Sprint(i))
	}
	where, err := ln.Start(ctx, m, proc.Spec{
		Name: name, NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: w.Path, Args: args, Env: w.Env,
		Log: filepath.Join(m.LogDir, "worker.log"),
	})
	if err != nil {
		return err
	}
	l.opts.Log.Debug("worker started", "member", m.Name, "where", where)
	return nil
}

// stageWorker copies w's binary and files into dir (on the member's node:
// its data directory is mounted there) and returns w naming the copies.
func stageWorker(w lab.Worker, dir string) (lab.Worker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return w, err
	}
	moved := map[string]string{}
	for _, src := range append([]string{w.Path}, w.Files...) {
		dst := filepath.Join(dir, filepath.Base(src))
		if err := linkOrCopy(src, dst); err != nil {
			return w, err
		}
		moved[src] = dst
	}
	out := w
	out.Path = moved[w.Path]
	out.Args = slices.Clone(w.Args)
	for i, a := range out.Args {
		if to, ok := moved[a]; ok {
			out.Args[i] = to
		}
	}
	out.Files = nil
	return out, nil
}

// linkOrCopy puts src's content at dst: a hard link where both are on one
// file system (a binary of tens of MB, once per member), else a copy.
func linkOrCopy(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// StopWorkers stops a stateless service's workers and forgets them.
func (l *Lab) StopWorkers(ctx context.Context, service string) error {
	ss, err := l.service(service)
	if err != nil {
		return err
	}
	ln := ss.Cluster.Launch()
	var errs []error
	for i := range ss.Cluster.Members {
		errs = append(errs, ln.Stop(ctx, workerName(ss, i), 5*time.Second))
	}
	l.mu.Lock()
	ss.Worker = nil
	errs = append(errs, l.save())
	l.mu.Unlock()
	return errors.Join(errs...)
}

// workerAlive reports whether member i's worker runs.
func (l *Lab) workerAlive(ctx context.Context, ss *serviceState, i int) bool {
	return ss.Cluster.Launch().Alive(ctx, workerName(ss, i))
}
