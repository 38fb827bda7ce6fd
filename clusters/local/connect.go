package local

import (
	"fmt"

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
