package local

import (
	"context"
	"errors"
	"fmt"
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
		errs = append(errs, l.startWorker(ss, i))
	}
	return errors.Join(errs...)
}

func (l *Lab) startWorker(ss *serviceState, i int) error {
	if ss.Worker == nil {
		return nil
	}
	m := ss.Cluster.Members[i]
	if !l.net.Powered(m.Node) {
		return nil
	}
	name := workerName(ss, i)
	if rec, err := proc.Load(l.dir, name); err == nil && rec.Alive() {
		return nil
	}
	args := slices.Clone(ss.Worker.Args)
	if ss.Worker.MemberFlag != "" {
		args = append(args, ss.Worker.MemberFlag, fmt.Sprint(i))
	}
	_, err := proc.Start(l.dir, proc.Spec{
		Name: name, NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: ss.Worker.Path, Args: args, Env: ss.Worker.Env,
		Log: filepath.Join(m.LogDir, "worker.log"),
	})
	return err
}

// StopWorkers stops a stateless service's workers and forgets them.
func (l *Lab) StopWorkers(ctx context.Context, service string) error {
	ss, err := l.service(service)
	if err != nil {
		return err
	}
	var errs []error
	for i := range ss.Cluster.Members {
		rec, err := proc.Load(l.dir, workerName(ss, i))
		if err != nil {
			continue
		}
		errs = append(errs, rec.Stop(ctx, 5*time.Second), proc.Forget(l.dir, rec.Name))
	}
	l.mu.Lock()
	ss.Worker = nil
	errs = append(errs, l.save())
	l.mu.Unlock()
	return errors.Join(errs...)
}

// workerAlive reports whether member i's worker runs.
func (l *Lab) workerAlive(ss *serviceState, i int) bool {
	rec, err := proc.Load(l.dir, workerName(ss, i))
	return err == nil && rec.Alive()
}
