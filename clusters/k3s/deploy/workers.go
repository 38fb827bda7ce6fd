package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// WorkerBinary is where the chaosloop binary is in the node agent's image,
// which the workers run from: a worker is chaosloop itself (`chaosloop
// internal handler`), so the image that carries the agent carries it.
const WorkerBinary = "/usr/local/bin/chaosloop"

// Workers are a stateless service's workers on a cluster (the run's
// transfer handlers): member i's a pod on its node, in the node's network,
// from the agent's image, its files put in the member's directory on the
// node through the node's agent. A worker that ends stays ended, as the
// labs' do, until Start is called for it again.
type Workers struct {
	Cluster *engines.Cluster
	log     *slog.Logger
}

// NewWorkers places sv's workers; image is the node agent's image (the one
// the scenario's agents run). It starts nothing.
func NewWorkers(ctx context.Context, o Options, sv *topology.Service, image string) (*Workers, error) {
	if sv.Kind != scenarios.KindStateless {
		return nil, fmt.Errorf("service %s is a %s service; workers run on stateless services", sv.Name, sv.Kind)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c, err := onNodes(ctx, o, sv, image)
	if err != nil {
		return nil, err
	}
	return &Workers{Cluster: c, log: o.Log}, nil
}

// workerName names member m's worker process (and so its pod), as the
// labs name it.
func workerName(m engines.Member) string { return m.Name + ".worker" }

// Start runs w on member i unless its worker runs already: w's files are
// written to the member's directory on its node and w's arguments name
// them there; the binary is the image's (WorkerBinary), not w.Path.
func (ws *Workers) Start(ctx context.Context, i int, w lab.Worker) error {
	if i < 0 || i >= len(ws.Cluster.Members) {
		return fmt.Errorf("service %s has no member %d", ws.Cluster.Service, i)
	}
	m := ws.Cluster.Members[i]
	ln := ws.Cluster.Launch()
	name := workerName(m)
	if ln.Alive(ctx, name) {
		return nil
	}
	args, err := ws.stage(ctx, m, w)
	if err != nil {
		return fmt.Errorf("worker of %s: %w", m.Name, err)
	}
	if w.MemberFlag != "" {
		args = append(args, w.MemberFlag, fmt.Sprint(i))
	}
	// no log file: the worker writes to its pod's log, which outlives it
	where, err := ln.Start(ctx, m, proc.Spec{Name: name, Path: WorkerBinary, Args: args, Env: w.Env})
	if err != nil {
		return fmt.Errorf("worker of %s: %w", m.Name, err)
	}
	ws.log.Debug("worker started", "member", m.Name, "where", where)
	return nil
}

// stage writes w's files to m's directory on its node and returns w's
// arguments with each file's path replaced by its copy's there.
func (ws *Workers) stage(ctx context.Context, m engines.Member, w lab.Worker) ([]string, error) {
	dir := filepath.Join(m.DataDir, "worker")
	fs := ws.Cluster.FS()
	if err := fs.MkdirAll(ctx, m, dir, 0o700); err != nil {
		return nil, err
	}
	args := slices.Clone(w.Args)
	for _, src := range w.Files {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := fs.WriteFile(ctx, m, dst, data, 0o600); err != nil {
			return nil, err
		}
		for k, a := range args {
			if a == src {
				args[k] = dst
			}
		}
	}
	return args, nil
}

// Running says whether member i's worker runs, as the API server has it.
func (ws *Workers) Running(ctx context.Context, i int) bool {
	return ws.Cluster.Launch().Alive(ctx, workerName(ws.Cluster.Members[i]))
}

// Reset starts member i's worker anew after its node was powered off: the
// pod the API server may still show Running died with the node.
func (ws *Workers) Reset(ctx context.Context, i int, w lab.Worker) error {
	if err := ws.Cluster.Launch().Stop(ctx, workerName(ws.Cluster.Members[i]), 0); err != nil {
		return err
	}
	return ws.Start(ctx, i, w)
}

// workerGrace is how long a worker is given to end when stopped: a
// handler commits what it consumed and leaves its group.
const workerGrace = 10 * time.Second

// Stop ends every member's worker and waits until their pods are gone;
// each one's log is kept first, in its member's log directory on its node
// (worker.log), until down removes the member's files.
func (ws *Workers) Stop(ctx context.Context) error {
	var errs []error
	for _, m := range ws.Cluster.Members {
		if err := ws.keepLog(ctx, m); err != nil {
			ws.log.Warn("k3s: a worker's log not kept", "member", m.Name, "err", err)
		}
		if err := ws.Cluster.Launch().Stop(ctx, workerName(m), workerGrace); err != nil {
			errs = append(errs, fmt.Errorf("worker of %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}

// maxWorkerLog bounds the log kept of a worker: its first 16 MiB.
const maxWorkerLog = 16 << 20

// keepLog writes the log of m's worker's pod to m's log directory on its
// node.
func (ws *Workers) keepLog(ctx context.Context, m engines.Member) error {
	pods, ok := ws.Cluster.Launcher.(*Pods)
	if !ok {
		return nil
	}
	out, err := pods.Output(ctx, workerName(m), maxWorkerLog)
	if err != nil {
		return err
	}
	fs := ws.Cluster.FS()
	if err := fs.MkdirAll(ctx, m, m.LogDir, 0o755); err != nil {
		return err
	}
	return fs.WriteFile(ctx, m, filepath.Join(m.LogDir, "worker.log"), out, 0o644)
}
