package etcd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
)

// NewClient is an etcd client of endpoints that dials through dial (inside
// a lab namespace, or through a remote cluster's relay).
func NewClient(endpoints []string, dial engines.DialFunc) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints,
		// gRPC reconnects by itself; the client's own warnings about dead
		// members would flood the log during every fault.
		Logger: zap.NewNop(),
		// etcd's server refuses pings more often than every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		DialOptions: []grpc.DialOption{
			// The lab reaches members from inside their host namespaces.
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dial(ctx, "tcp", addr) }),
			// gRPC's default backoff grows to 2 minutes: a member back from a
			// long outage would look down long after it answers again.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}),
		},
	})
}

// client returns the cached single-endpoint client of ep.
func (e *Engine) client(ep string, dial engines.DialFunc) (*clientv3.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cli, ok := e.clients[ep]; ok {
		return cli, nil
	}
	cli, err := NewClient([]string{ep}, dial)
	if err != nil {
		return nil, err
	}
	e.clients[ep] = cli
	return cli, nil
}

// Status asks every member, in parallel and within StatusTimeout, for its
// raft status and for a linearizable read: a member that answers is Up; one
// whose linearizable read succeeds is Healthy (its leader holds a quorum).
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	st := engines.Status{Engine: "etcd", Members: make([]engines.MemberStatus, len(c.Members))}
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	ids := make([]uint64, len(c.Members))
	leaders := make([]uint64, len(c.Members))
	versions := make([]string, len(c.Members))
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, id, leader, version := e.memberStatus(ctx, c, m)
			ms.Index = i
			st.Members[i] = ms
			ids[i], leaders[i], versions[i] = id, leader, version
		}()
	}
	wg.Wait()
	byID := map[uint64]string{}
	for i, id := range ids {
		if id != 0 {
			byID[id] = c.Members[i].Name
		}
	}
	for i := range st.Members {
		ms := &st.Members[i]
		if versions[i] != "" {
			st.Version = versions[i]
		}
		if leaders[i] != 0 {
			name := byID[leaders[i]]
			if name == "" {
				name = fmt.Sprintf("%x", leaders[i])
			}
			ms.Detail = "leader " + name + "; " + ms.Detail
		}
		if ms.Healthy {
			st.Writable = true
		}
	}
	return st, nil
}

func (e *Engine) memberStatus(ctx context.Context, c *engines.Cluster, m engines.Member) (ms engines.MemberStatus, id, leader uint64, version string) {
	ms.Name = m.Name
	if c.NotRunning(ctx, &ms, ProcessName(m)) {
		return
	}
	cli, err := e.client(clientEndpoint(m), c.Dialer())
	if err != nil {
		ms.Detail = err.Error()
		return
	}
	readErr := make(chan error, 1)
	go func() {
		// Serializable is off: the read goes through the leader's
		// ReadIndex, which needs a quorum of heartbeats.
		_, err := cli.Get(ctx, healthKey, clientv3.WithCountOnly())
		readErr <- err
	}()
	// On the cached connection: clientv3's Status dials anew each call.
	sr, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Status(ctx, &pb.StatusRequest{})
	rerr := <-readErr
	if err != nil {
		ms.Detail = "status: " + err.Error()
		ms.TimedOut = timedOut(err)
		return
	}
	ms.Up = true
	id, leader, version = sr.Header.MemberId, sr.Leader, sr.Version
	switch {
	case sr.IsLearner:
		ms.Role = "learner"
	case leader == 0:
		ms.Role = ""
	case leader == id:
		ms.Role = "leader"
	default:
		ms.Role = "follower"
	}
	ms.Detail = fmt.Sprintf("term %d, applied %d", sr.RaftTerm, sr.RaftAppliedIndex)
	if leader == 0 {
		ms.Detail = "no leader; " + ms.Detail
	}
	if len(sr.Errors) > 0 {
		ms.Detail += "; errors: " + strings.Join(sr.Errors, ", ")
	}
	if rerr != nil {
		ms.Detail += "; linearizable read: " + rerr.Error()
		// With a leader named, a read that ran out of time may be a slow
		// member, not a lost quorum: no evidence. Without one, the member
		// itself says it has no quorum.
		ms.TimedOut = leader != 0 && timedOut(rerr)
		return
	}
	ms.Healthy = leader != 0 && len(sr.Errors) == 0
	return
}

// timedOut: a deadline, as a context error or as gRPC reports it (the
// maintenance client's errors are raw gRPC statuses).
func timedOut(err error) bool {
	return lab.IsTimeout(err) || grpcstatus.Code(err) == codes.DeadlineExceeded
}

// waitWritable waits until some member serves linearizable reads.
func (e *Engine) waitWritable(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, startTimeout, 100*time.Millisecond, "etcd "+c.Service+" quorum", func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		if !st.Writable {
			return fmt.Errorf("no member in quorum: %s", st.Summary())
		}
		return nil
	})
}

// waitHealthy waits until every member is Up and Healthy and exactly one
// is leader.
func (e *Engine) waitHealthy(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, startTimeout, 100*time.Millisecond, "etcd "+c.Service+" healthy", func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		return st.OneLeader()
	})
}
