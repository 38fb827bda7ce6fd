package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/lab"

	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
)

// mysqlEngine is an engine of mysql services (Galera or async replication).
type mysqlEngine interface {
	engine
	DSN(c *engines.Cluster, i int) (string, error)
}

// MySQLDSNs returns a mysql service's DSNs, one per member in member order
// (go-sql-driver/mysql, over TCP to the member's lab address). With async
// replication only the first (member 0, the primary) takes writes.
func (l *Lab) MySQLDSNs(service string) ([]string, error) {
	ss, g, err := serviceEngine[mysqlEngine](l, service, "mysql")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ss.Cluster.Members))
	for i := range out {
		if out[i], err = g.DSN(&ss.Cluster, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RedisSentinels returns a redis service's Sentinel master name and
// Sentinel addresses.
func (l *Lab) RedisSentinels(service string) (master string, sentinels []string, err error) {
	ss, err := l.service(service)
	if err != nil {
		return "", nil, err
	}
	if ss.Engine != EngineRedis {
		return "", nil, fmt.Errorf("service %s is not a redis service", service)
	}
	return redis.MasterName(&ss.Cluster), redis.SentinelAddrs(&ss.Cluster), nil
}

// PrepareDocstore creates collections through one document-store instance
// and makes the others load them (FerretDB caches collection metadata).
func (l *Lab) PrepareDocstore(ctx context.Context, service, db string, collections []string) error {
	ss, d, err := serviceEngine[*docstore.Engine](l, service, "mongodb")
	if err != nil {
		return err
	}
	return d.Prepare(ctx, &ss.Cluster, db, collections)
}

// ClientUserTimeout bounds how long a client connection through the lab
// survives on a path that went dark (see lab.FailFastDialer and
// lab.WatchPeer).
const ClientUserTimeout = 4 * time.Second

// DialFromAny returns a dialer for a client that enters the lab through
// the nodes of a service, like a load balancer in front of them: each
// connection is opened from the first of those hosts (rotating) that has
// power, has not just failed a dial, and reaches the address, so a client
// survives the loss of one (lab.Rotate). Connections fail fast when their
// path goes dark, so the client's next one goes through another node.
func (l *Lab) DialFromAny(service string) (engines.DialFunc, error) {
	ss, err := l.service(service)
	if err != nil {
		return nil, err
	}
	var hosts []netlab.Host
	for _, m := range ss.Cluster.Members {
		h, ok := l.net.Host(m.Node)
		if !ok {
			return nil, fmt.Errorf("no host for node %s", m.Node)
		}
		hosts = append(hosts, h)
	}
	d := lab.FailFastDialer(ClientUserTimeout)
	return lab.Rotate(lab.Entries{
		N:      len(hosts),
		Usable: func(i int) bool { return l.net.Powered(hosts[i].Node) },
		Through: func(ctx context.Context, i int, network, address string) (net.Conn, error) {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := netlab.DialIn(actx, hosts[i].NetNS, d, network, address)
			if err != nil {
				return nil, err
			}
			return lab.WatchPeer(c, ClientUserTimeout), nil
		},
		Name: func(i int) string { return hosts[i].Node },
		None: "no node of " + service + " has power",
	}), nil
}

// PreferPrimaries puts every Redis service's primary back on member 0, as
// analyze's model has it (spec: Redis is a primary, member 0, plus async
// replicas), so that a run judges faults against the layout analyze
// assumed rather than wherever an earlier run's failover left it. Call it
// with no load running: a Sentinel failover may drop writes in flight.
func (l *Lab) PreferPrimaries(ctx context.Context) error {
	var errs []error
	for _, ss := range l.st.Services {
		if ss.Engine != EngineRedis {
			continue
		}
		_, r, err := serviceEngine[*redis.Engine](l, ss.Name, "redis")
		if err != nil {
			return err
		}
		if err := r.PreferPrimary(ctx, &ss.Cluster); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", ss.Name, err))
		}
	}
	return errors.Join(errs...)
}

// PreferLeaders makes the first broker of every Kafka partition's replica
// list its leader (a preferred replica election), as analyze's model has
// it (spec section 5: "the leader" of a partition is the first broker of
// its replica list), so that each fault is judged against the layout
// analyze assumed rather than wherever an earlier fault left leadership.
// The run calls it before each fault. It waits at most wait per service;
// a preferred broker that is down or still catching up cannot lead, and
// the error names the partitions led elsewhere.
func (l *Lab) PreferLeaders(ctx context.Context, wait time.Duration) error {
	var errs []error
	for _, ss := range l.st.Services {
		if ss.Engine != EngineKafka {
			continue
		}
		_, k, err := serviceEngine[*kafkaEngine](l, ss.Name, "kafka")
		if err != nil {
			return err
		}
		if err := k.ElectPreferredLeaders(ctx, &ss.Cluster, wait); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", ss.Name, err))
		}
	}
	return errors.Join(errs...)
}

// attachDialers makes every engine reach a member from inside the member's
// own host namespace: the lab's addresses are not routed from the caller's
// namespace, and a probe from the member's own host sees it even when a
// fault cuts the host off.
func (l *Lab) attachDialers() {
	for _, ss := range l.st.Services {
		ss.Cluster.Dial = l.DialFromHostOf
	}
}

// DialFromHostOf dials address from inside the namespace of the host that
// owns it (falling back to the caller's namespace for other addresses).
func (l *Lab) DialFromHostOf(ctx context.Context, network, address string) (net.Conn, error) {
	return l.net.DialFromHostOf(ctx, network, address)
}
