package local

import (
	"context"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// substitute names the stand-in for a service's kind when its engine is
// not the real thing, shown in status and every report. MySQL async
// replication has none: MariaDB's GTID replication behaves as MySQL 5.7's
// (a primary, read-only replicas, no failover).
func substitute(kind, engine string) string {
	switch {
	case kind == scenarios.KindMongoDB:
		return "no MongoDB server can be installed here: FerretDB (MongoDB wire protocol) over Patroni-managed PostgreSQL with synchronous replication"
	case kind == scenarios.KindMySQL && engine == EngineGalera:
		return "MariaDB Galera (synchronous, quorum-based) stands for MySQL group replication"
	case kind == scenarios.KindRaft:
		return "etcd's Raft stands for the Raft service"
	}
	return ""
}

// StatusTimeout bounds one service's status probe.
const StatusTimeout = 2 * time.Second

// Status observes every service in parallel.
func (l *Lab) Status(ctx context.Context) (*lab.Status, error) {
	out := &lab.Status{Name: l.st.Name, Dir: l.dir, Hosts: len(l.net.Hosts()), Faults: l.ActiveFaults()}
	out.Services = make([]lab.ServiceStatus, len(l.st.Services))
	var wg sync.WaitGroup
	for i, ss := range l.st.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Services[i] = l.serviceStatus(ctx, ss)
		}()
	}
	wg.Wait()
	return out, nil
}

// ServiceStatus observes one service.
func (l *Lab) ServiceStatus(ctx context.Context, name string) (lab.ServiceStatus, error) {
	ss, err := l.service(name)
	if err != nil {
		return lab.ServiceStatus{}, err
	}
	return l.serviceStatus(ctx, ss), nil
}

func (l *Lab) serviceStatus(ctx context.Context, ss *serviceState) lab.ServiceStatus {
	si := lab.ServiceStatus{Name: ss.Name, Kind: ss.Kind, Engine: ss.Engine, Substitute: substitute(ss.Kind, ss.Engine)}
	var st engines.Status
	if ss.Engine == EngineNone {
		st = l.statelessStatus(ctx, ss)
	} else {
		e, err := l.eng.get(ss.Engine, ss)
		if err != nil {
			si.Error = err.Error()
			return si
		}
		cctx, cancel := context.WithTimeout(ctx, StatusTimeout)
		st, err = e.Status(cctx, &ss.Cluster)
		cancel()
		if err != nil {
			si.Error, si.TimedOut = err.Error(), lab.IsTimeout(err)
		}
	}
	si.Version, si.Writable = st.Version, st.Writable
	byIndex := map[int]engines.MemberStatus{}
	for _, ms := range st.Members {
		byIndex[ms.Index] = ms
	}
	si.Healthy = si.Error == ""
	for _, m := range ss.Cluster.Members {
		ms := byIndex[m.Index]
		si.Members = append(si.Members, lab.Member{Index: m.Index, Name: m.Name, Node: m.Node, Addr: m.Addr.String(),
			Role: ms.Role, Up: ms.Up, Healthy: ms.Healthy, Detail: ms.Detail, TimedOut: ms.TimedOut})
		if !ms.Healthy {
			si.Healthy = false
		}
	}
	return si
}

// statelessStatus: a stateless member is up while its node has power and,
// when the service has a worker, while the worker runs.
func (l *Lab) statelessStatus(ctx context.Context, ss *serviceState) engines.Status {
	st := engines.Status{Engine: EngineNone}
	for i, m := range ss.Cluster.Members {
		up := l.net.Powered(m.Node)
		if ss.Worker != nil {
			up = up && l.workerAlive(ctx, ss, i)
		}
		st.Members = append(st.Members, engines.MemberStatus{Index: m.Index, Name: m.Name, Up: up, Healthy: up})
		st.Writable = st.Writable || up
	}
	return st
}
