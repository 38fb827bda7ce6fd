package load_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/load/finalstate"
	"github.com/chaosloop/chaosloop/load/wire"
)

// testLab is Galera×3, Kafka×3 (KRaft) and Redis×3 with Sentinel on
// 127.0.0.51-53, no namespaces. One is shared by the package's tests and
// benchmarks (starting it takes about a minute) and stopped by TestMain.
type testLab struct {
	dir     string
	gc      *engines.Cluster
	kc      *engines.Cluster
	rc      *engines.Cluster
	dsns    []string
	brokers []string
	redis   load.Redis
	members []string // redis data nodes
}

var shared struct {
	once   sync.Once
	lab    *testLab
	err    error
	stop   func()
	finish func(code int) // keeps the evidence directory when code != 0
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	if shared.finish != nil {
		shared.finish(code)
	}
	os.Exit(code)
}

func getLab(tb testing.TB) *testLab {
	tb.Helper()
	enginetest.RequireRoot(tb)
	shared.once.Do(func() { shared.lab, shared.err = startLab() })
	if shared.err != nil {
		enginetest.RequireLab(tb, "cannot start the engines: "+shared.err.Error())
	}
	return shared.lab
}

func cluster(dir, service string, first byte) *engines.Cluster {
	c := &engines.Cluster{Service: service, StateDir: filepath.Join(dir, service, "state")}
	for i := range 3 {
		name := fmt.Sprintf("%s-%d", service, i+1)
		c.Members = append(c.Members, engines.Member{
			Index: i, Name: name, Node: name,
			Addr:    netip.AddrFrom4([4]byte{127, 0, 0, first + byte(i)}),
			DataDir: filepath.Join(dir, service, name, "data"),
			LogDir:  filepath.Join(dir, service, name, "log"),
		})
	}
	return c
}

func startLab() (*testLab, error) {
	log := enginetest.ProcessLog()
	// Kept, with the engines' logs, when a test of the package fails.
	dir, finish, err := enginetest.SharedEvidence("load")
	if err != nil {
		return nil, err
	}
	shared.finish = finish
	l := &testLab{dir: dir, gc: cluster(dir, "ledger-db", 51), kc: cluster(dir, "kafka", 51), rc: cluster(dir, "cache", 51)}
	shared.stop = func() {
		for _, c := range []*engines.Cluster{l.kc, l.rc, l.gc} {
			recs, _ := proc.List(c.StateDir)
			for _, r := range recs {
				_ = r.Kill()
				r.Wait(context.Background(), 10*time.Second)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ge, re, ke := galera.New(log), redis.New(log), kafka.New(log, "")
	if err := ge.Install(ctx); err != nil {
		return nil, err
	}
	if err := re.Install(ctx); err != nil {
		return nil, err
	}
	var g errgroup.Group
	g.Go(func() error { return ge.Start(ctx, l.gc) })
	g.Go(func() error { return re.Start(ctx, l.rc) })
	g.Go(func() error {
		return ke.Start(ctx, l.kc, kafka.Options{Topics: wire.Topics, Partitions: 3, ReplicationFactor: 3, MinInSync: 2})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range l.gc.Members {
		dsn, err := ge.DSN(l.gc, i)
		if err != nil {
			return nil, err
		}
		l.dsns = append(l.dsns, dsn)
	}
	l.brokers = ke.Endpoints(l.kc)
	l.redis = load.Redis{Service: l.rc.Service, MasterName: redis.MasterName(l.rc), Sentinels: redis.SentinelAddrs(l.rc)}
	l.members = re.Endpoints(l.rc)
	return l, nil
}

func (l *testLab) sources() finalstate.Sources {
	return finalstate.Sources{
		LedgerService: l.gc.Service, LedgerDSNs: l.dsns,
		Redis: l.redis, RedisMembers: l.members,
		Kafka: load.Kafka{Service: l.kc.Service, Brokers: l.brokers},
	}
}
