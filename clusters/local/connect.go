package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"

	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
)

// MySQLDSNs returns a mysql service's DSNs, one per member in member order
// (go-sql-driver/mysql, over TCP to the member's lab address).
func (l *Lab) MySQLDSNs(service string) ([]string, error) {
	ss, err := l.service(service)
	if err != nil {
		return nil, err
	}
	e, err := l.eng.get(ss.Engine, ss)
	if err != nil {
		return nil, err
	}
	g, ok := e.(*galera.Engine)
	if !ok {
		return nil, fmt.Errorf("service %s is not a mysql service", service)
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
	ss, err := l.service(service)
	if err != nil {
		return err
	}
	e, err := l.eng.get(ss.Engine, ss)
	if err != nil {
		return err
	}
	d, ok := e.(*docstore.Engine)
	if !ok {
		return fmt.Errorf("service %s is not a mongodb service", service)
	}
	return d.Prepare(ctx, &ss.Cluster, db, collections)
}

// DialFromAny returns a dialer for a client that enters the lab through
// the nodes of a service, like a load balancer in front of them: each
// connection is opened from the first of those hosts (rotating) that has
// power and reaches the address, so a client survives the loss of one.
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
	var next atomic.Uint32
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		start := int(next.Add(1))
		var errs []error
		for k := range hosts {
			h := hosts[(start+k)%len(hosts)]
			if !l.net.Powered(h.Node) {
				continue
			}
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := netlab.DialIn(actx, h.NetNS, &net.Dialer{}, network, address)
			cancel()
			if err == nil {
				return c, nil
			}
			errs = append(errs, fmt.Errorf("from %s: %w", h.Node, err))
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("dial %s: no node of %s has power", address, service)
		}
		return nil, errors.Join(errs...)
	}, nil
}
