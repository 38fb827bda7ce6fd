package load_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/load"
	"github.com/chaosloop/chaosloop/load/finalstate"
	"github.com/chaosloop/chaosloop/load/handler"
	"github.com/chaosloop/chaosloop/load/ledger"
	"github.com/chaosloop/chaosloop/load/wire"
	"github.com/chaosloop/chaosloop/reports"
	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/scenarios"
)

// testScenario is the small layout the engines above stand for: one
// member of each service per rack, no faults.
const testScenario = `
name: load-test
sites:
  - name: dc1
    racks:
      - name: r1
        power: [pdu-1]
        nodes: [{name: n1, pools: [DB, KAFKA, CACHE, APP]}]
      - name: r2
        power: [pdu-2]
        nodes: [{name: n2, pools: [DB, KAFKA, CACHE, APP]}]
      - name: r3
        power: [pdu-3]
        nodes: [{name: n3, pools: [DB, KAFKA, CACHE, APP]}]
services:
  - {name: ledger-db, kind: mysql, replication: group, replicas: 3, pool: DB}
  - {name: kafka, kind: kafka, replicas: 3, pool: KAFKA}
  - {name: cache, kind: redis, replicas: 3, pool: CACHE}
  - {name: handlers, kind: stateless, replicas: 3, pool: APP}
load: {rate: 50, duration: 20s, warmup: 5s, participants: 6}
expect: {quorum: held, acknowledgedLoss: 0}
`

type pipelineRun struct {
	dir    string
	events []history.Event
	final  *history.Final
	report *checks.Report
	took   time.Duration
}

// runPipeline sets up the ledger, starts handlers in-process, drives the
// load, reads the final state and judges it with reports.Generate.
func runPipeline(tb testing.TB, l *testLab, ps ledger.Participants, cfg load.Config, handlers int) pipelineRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := enginetest.ProcessLog()

	store, err := ledger.Open(ledger.Options{DSNs: l.dsns, Log: log})
	require.NoError(tb, err)
	ps.Reset = true
	require.NoError(tb, store.Setup(ctx, ps))
	store.Close()

	hctx, stopHandlers := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	for i := range handlers {
		hwg.Go(func() {
			err := handler.Run(hctx, log, handler.Config{Name: fmt.Sprintf("h%d", i), Brokers: l.brokers, DSNs: l.dsns})
			if err != nil && hctx.Err() == nil {
				tb.Errorf("handler %d: %v", i, err)
			}
		})
	}
	defer func() { stopHandlers(); hwg.Wait() }()
	require.NoError(tb, handler.AwaitGroups(ctx, log, handler.Config{Brokers: l.brokers}, nil, handlers, time.Minute))

	dir := tb.TempDir()
	start := time.Now()
	hw, err := history.Create(filepath.Join(dir, reports.HistoryFile), start)
	require.NoError(tb, err)
	defer hw.Close()
	cfg.Participants, cfg.Currency = ps.Names, ps.Currency
	cfg.Kafka = load.Kafka{Service: l.kc.Service, Brokers: l.brokers}
	cfg.Redis = l.redis
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	gen, err := load.New(ctx, log, cfg, hw)
	require.NoError(tb, err)
	t0 := time.Now()
	require.NoError(tb, gen.Run(ctx))
	took := time.Since(t0)
	gen.Close()

	src := l.sources()
	n, err := finalstate.ConsumeAll(ctx, log, src, "", hw)
	require.NoError(tb, err)
	tb.Logf("consumed %d prepare records", n)
	final := finalstate.Read(ctx, log, src)
	require.NoError(tb, history.WriteFinal(filepath.Join(dir, reports.FinalFile), final))
	require.NoError(tb, hw.Close())

	sc, err := scenarios.Decode("load-test.yaml", []byte(testScenario))
	require.NoError(tb, err)
	rep, err := reports.Generate(ctx, log, reports.Run{Dir: dir, Scenario: sc, Seed: cfg.Seed, Started: start}, checks.Options{})
	require.NoError(tb, err)
	events, err := history.ReadFile(filepath.Join(dir, reports.HistoryFile))
	require.NoError(tb, err)
	return pipelineRun{dir: dir, events: events, final: final, report: rep, took: took}
}

// outcomes counts transfer completions by type.
func outcomes(events []history.Event) map[string]int {
	out := map[string]int{}
	for _, e := range events {
		if e.Op == history.OpTransfer && e.Type != history.Invoke {
			out[e.Type]++
		}
	}
	return out
}

func requireChecks(t *testing.T, rep *checks.Report, ids ...string) {
	t.Helper()
	for _, id := range ids {
		c := rep.Check(id)
		require.NotNil(t, c, id)
		require.Equal(t, checks.Pass, c.Status, "%s: %s\n%+v", id, c.Summary, c.Findings)
	}
}

// The load waits for the handlers: AwaitGroups returns once every handler
// is in both groups with every partition assigned, and says what is
// missing when one never comes.
func TestAwaitGroupsWaitsForEveryHandler(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := enginetest.ProcessLog()
	cfg := handler.Config{Name: "await", Brokers: l.brokers, DSNs: l.dsns, Group: "await-test"}
	hctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = handler.Run(hctx, log, cfg) })
	}
	defer func() { stop(); wg.Wait() }()
	require.NoError(t, handler.AwaitGroups(ctx, log, cfg, nil, 2, 2*time.Minute))
	err := handler.AwaitGroups(ctx, log, cfg, nil, 3, 3*time.Second)
	require.ErrorContains(t, err, "not ready after 3s")
	require.ErrorContains(t, err, "await-test-prepare: 2 of 3 handlers")
	require.ErrorContains(t, err, "await-test-fulfil: 2 of 3 handlers")
}

// A short real run through Galera, Kafka, Redis and in-process handlers
// leaves evidence the reports judge PASS on checks 1-3.
func TestPipelinePasses(t *testing.T) {
	l := getLab(t)
	r := runPipeline(t, l, ledger.DefaultParticipants(6), load.Config{Rate: 50, Duration: 20 * time.Second, Seed: 7, RunID: "pass"}, 2)
	oc := outcomes(r.events)
	t.Logf("outcomes %v; verdict %s: %v", oc, r.report.Verdict, r.report.Why)
	for _, c := range r.report.Checks {
		t.Logf("check %-24s %-7s %s", c.ID, c.Status, c.Summary)
	}
	requireChecks(t, r.report, checks.CheckAcknowledged, checks.CheckMoney, checks.CheckKafka)
	require.Zero(t, oc[history.Fail], "nothing is refused with a cap no run reaches")
	require.Greater(t, oc[history.OK], 900, "most of 1000 transfers are acknowledged")
	// Every transfer the client saw acknowledged is COMMITTED in the ledger
	// and its dedupe key is readable.
	for _, e := range r.events {
		if e.Op == history.OpTransfer && e.Type == history.OK {
			require.Equal(t, wire.StateCommitted, r.final.Transfers[e.ID].State, e.ID)
			require.True(t, r.final.RedisKeys[e.ID], e.ID)
		}
	}
	// Galera and Redis members converged.
	byService := map[string][]string{}
	for _, v := range r.final.Replicas {
		require.Empty(t, v.Error, "%s member %d", v.Service, v.Member)
		byService[v.Service] = append(byService[v.Service], v.Digest)
	}
	for svc, ds := range byService {
		require.Len(t, slices.Compact(slices.Clone(ds)), 1, "%s digests %v", svc, ds)
	}
}

// Negative control: with a small net debit cap, transfers that would pass
// it are refused (fail), and no position ever goes beyond it.
func TestNetDebitCapRefuses(t *testing.T) {
	l := getLab(t)
	ps := ledger.DefaultParticipants(3)
	ps.NetDebitCap = 20_000
	r := runPipeline(t, l, ps, load.Config{Rate: 40, Duration: 6 * time.Second, Seed: 11, RunID: "cap", MaxAmount: 10_000}, 1)
	oc := outcomes(r.events)
	t.Logf("outcomes %v; verdict %s", oc, r.report.Verdict)
	require.Positive(t, oc[history.Fail], "some transfers pass the cap and are refused")
	require.Positive(t, oc[history.OK])
	refused := 0
	for _, e := range r.events {
		if e.Op == history.OpTransfer && e.Type == history.Fail {
			require.Contains(t, e.Error, "PAYER_LIMIT_ERROR")
			require.Equal(t, wire.StateAborted, r.final.Transfers[e.ID].State)
			refused++
		}
	}
	for _, p := range r.final.Positions {
		require.LessOrEqual(t, p.Value, p.NetDebitCap, p.Participant)
	}
	for _, c := range r.final.PositionChanges {
		require.LessOrEqual(t, c.Value, ps.NetDebitCap, "%+v", c)
		require.NotEqual(t, "", c.Kind)
	}
	requireChecks(t, r.report, checks.CheckAcknowledged, checks.CheckMoney, checks.CheckKafka)
	t.Logf("%d refused", refused)
}

// The same prepare delivered twice (and fulfilled twice) moves each
// position once: directly against the ledger, concurrently, and through
// Kafka and the handlers.
func TestIdempotentPrepare(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := enginetest.ProcessLog()
	store, err := ledger.Open(ledger.Options{DSNs: l.dsns, Log: log})
	require.NoError(t, err)
	defer store.Close()
	ps := ledger.DefaultParticipants(2)
	ps.Reset = true
	require.NoError(t, store.Setup(ctx, ps))

	// Direct: five concurrent prepares of one transfer, then two fulfils,
	// the second by another Store (another handler, preferring another
	// member: it writes through the cluster's one writer too).
	p := wire.Prepare{TransferID: "idem-direct", Payer: ps.Names[0], Payee: ps.Names[1], Amount: 1234, Currency: ps.Currency}
	var wg sync.WaitGroup
	outs := make([]ledger.Outcome, 5)
	errs := make([]error, 5)
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = store.Prepare(ctx, p) })
	}
	wg.Wait()
	fresh := 0
	for i := range outs {
		require.NoError(t, errs[i])
		require.Equal(t, wire.StateReserved, outs[i].State)
		if !outs[i].Duplicate {
			fresh++
		}
	}
	require.Equal(t, 1, fresh, "exactly one prepare reserved")
	other, err := ledger.Open(ledger.Options{DSNs: []string{l.dsns[2], l.dsns[1], l.dsns[0]}, Log: log})
	require.NoError(t, err)
	defer other.Close()
	o1, err := store.Fulfil(ctx, wire.Fulfil{TransferID: p.TransferID, Fulfilment: "f"})
	require.NoError(t, err)
	require.Equal(t, ledger.Outcome{State: wire.StateCommitted}, o1)
	o2, err := other.Fulfil(ctx, wire.Fulfil{TransferID: p.TransferID, Fulfilment: "f"})
	require.NoError(t, err)
	require.Equal(t, ledger.Outcome{State: wire.StateCommitted, Duplicate: true}, o2)
	o3, err := other.Prepare(ctx, p)
	require.NoError(t, err)
	require.Equal(t, ledger.Outcome{State: wire.StateCommitted, Duplicate: true}, o3)

	// Through Kafka: the same prepare record produced twice.
	hctx, stop := context.WithCancel(ctx)
	var hwg sync.WaitGroup
	hwg.Go(func() {
		_ = handler.Run(hctx, log, handler.Config{Name: "idem", Brokers: l.brokers, DSNs: l.dsns})
	})
	defer func() { stop(); hwg.Wait() }()
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ConsumeTopics(wire.TopicNotification), kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(time.Now().Add(-time.Second).UnixMilli())))
	require.NoError(t, err)
	defer cl.Close()
	k := wire.Prepare{TransferID: "idem-kafka", Payer: ps.Names[1], Payee: ps.Names[0], Amount: 777, Currency: ps.Currency}
	for range 2 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: wire.TopicPrepare, Key: []byte(k.Payer), Value: wire.Encode(k)}).FirstErr())
	}
	notes := 0
	for notes < 2 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "waiting for two notifications")
		fs.EachRecord(func(r *kgo.Record) {
			n, err := wire.Decode[wire.Notification](r.Value)
			if err == nil && n.TransferID == k.TransferID {
				require.Equal(t, wire.StateCommitted, n.State)
				notes++
			}
		})
	}

	f := &history.Final{}
	ledger.ReadFinal(ctx, ledger.Options{DSNs: l.dsns}, f)
	require.Empty(t, f.ReadErrors)
	moves := map[string]int{}
	for _, c := range f.PositionChanges {
		moves[c.TransferID+" "+c.Kind]++
	}
	require.Equal(t, map[string]int{"idem-direct reserve": 1, "idem-direct commit": 1, "idem-kafka reserve": 1, "idem-kafka commit": 1}, moves)
	var sum int64
	for _, p := range f.Positions {
		sum += p.Value
	}
	require.Zero(t, sum)
	require.Equal(t, wire.StateCommitted, f.Transfers["idem-kafka"].State)
}

// A batched prepare (and fulfil) containing a redelivery from before, a
// duplicate within the batch, a cap-refused transfer, one at exactly the
// cap, an unknown participant and an invalid amount gives the same
// outcomes and leaves the same ledger as one transaction per transfer.
func TestBatchMatchesSequential(t *testing.T) {
	l := getLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := enginetest.ProcessLog()
	store, err := ledger.Open(ledger.Options{DSNs: l.dsns, Log: log})
	require.NoError(t, err)
	defer store.Close()
	ps := ledger.DefaultParticipants(3)
	ps.NetDebitCap = 20_000
	ps.Reset = true
	p1, p2, p3 := ps.Names[0], ps.Names[1], ps.Names[2]
	tr := func(id, payer, payee string, amount int64) wire.Prepare {
		return wire.Prepare{TransferID: id, Payer: payer, Payee: payee, Amount: amount, Currency: ps.Currency}
	}
	before := tr("b-pre", p3, p1, 100)
	prepares := []wire.Prepare{
		tr("b-a", p1, p2, 8000),
		tr("b-b", p1, p3, 9000),
		tr("b-c", p1, p2, 5000), // 22000 > cap: refused
		tr("b-a", p1, p2, 8000), // duplicate in the batch
		before,                  // processed before the batch
		tr("b-d", p2, p1, 3000),
		tr("b-e", p1, p3, 3000), // exactly the cap: reserved
		tr("b-u", p1, "nobody", 10),
		tr("b-z", p2, p3, 0),
	}
	fulfils := []wire.Fulfil{{TransferID: "b-a"}, {TransferID: "b-c"}, {TransferID: "b-a"}, {TransferID: "b-pre"}, {TransferID: "b-none"}, {TransferID: "b-e"}}
	for i := range fulfils {
		fulfils[i].Fulfilment = "f-" + fulfils[i].TransferID
	}
	type outcome struct {
		ledger.Outcome
		Err string
	}
	norm := func(rs []ledger.Result) []outcome {
		out := make([]outcome, len(rs))
		for i, r := range rs {
			out[i].Outcome = r.Outcome
			if r.Err != nil {
				out[i] = outcome{Err: r.Err.Error()}
			}
		}
		return out
	}
	run := func(batched bool) (prep, ful []outcome, f *history.Final) {
		require.NoError(t, store.Setup(ctx, ps))
		_, err := store.Prepare(ctx, before)
		require.NoError(t, err)
		var pr, fr []ledger.Result
		if batched {
			pr = store.PrepareBatch(ctx, prepares)
			fr = store.FulfilBatch(ctx, fulfils)
		} else {
			for _, p := range prepares {
				o, err := store.Prepare(ctx, p)
				pr = append(pr, ledger.Result{Outcome: o, Err: err})
			}
			for _, f := range fulfils {
				o, err := store.Fulfil(ctx, f)
				fr = append(fr, ledger.Result{Outcome: o, Err: err})
			}
		}
		require.ErrorIs(t, pr[7].Err, ledger.ErrUnknownParticipant)
		require.ErrorIs(t, fr[4].Err, ledger.ErrNoTransfer)
		f = &history.Final{}
		ledger.ReadFinal(ctx, ledger.Options{DSNs: l.dsns}, f)
		require.Empty(t, f.ReadErrors)
		return norm(pr), norm(fr), f
	}
	seqP, seqF, seqFinal := run(false)
	batP, batF, batFinal := run(true)

	reserved := ledger.Outcome{State: wire.StateReserved}
	refused := ledger.Outcome{State: wire.StateAborted, Reason: "PAYER_LIMIT_ERROR"}
	want := []ledger.Outcome{reserved, reserved, refused, {State: wire.StateReserved, Duplicate: true},
		{State: wire.StateReserved, Duplicate: true}, reserved, reserved}
	for i, w := range want {
		require.Equal(t, w, seqP[i].Outcome, "sequential prepare %d", i)
		require.Empty(t, seqP[i].Err, "sequential prepare %d", i)
	}
	require.NotEmpty(t, seqP[8].Err, "amount 0")
	committed := ledger.Outcome{State: wire.StateCommitted}
	require.Equal(t, []outcome{{Outcome: committed}, {Outcome: refused}, {Outcome: ledger.Outcome{State: wire.StateCommitted, Duplicate: true}},
		{Outcome: committed}, {Err: seqF[4].Err}, {Outcome: committed}}, seqF)

	require.Equal(t, seqP, batP, "prepare outcomes")
	require.Equal(t, seqF, batF, "fulfil outcomes")
	require.Equal(t, seqFinal.Transfers, batFinal.Transfers)
	require.Equal(t, seqFinal.Positions, batFinal.Positions)
	require.Equal(t, seqFinal.PositionChanges, batFinal.PositionChanges)
	for _, p := range batFinal.Positions {
		require.LessOrEqual(t, p.Value, p.NetDebitCap, p.Participant)
	}
	t.Logf("positions %+v", batFinal.Positions)
}

// BenchmarkPipeline measures sustained committed transfers/s and latency
// through the real pipeline on loopback. Run it once:
//
//	go test ./load -run '^$' -bench Pipeline -benchtime 1x
//
// CHAOSLOOP_BENCH_RATE (default 400; a comma-separated list runs one
// sub-benchmark per rate on the same lab) and CHAOSLOOP_BENCH_SECONDS
// (default 20) set the offered load.
func BenchmarkPipeline(b *testing.B) {
	l := getLab(b)
	rates, secs := []float64{400}, 20
	if v := os.Getenv("CHAOSLOOP_BENCH_RATE"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			var r float64
			_, err := fmt.Sscan(f, &r)
			require.NoError(b, err, "CHAOSLOOP_BENCH_RATE")
			rates = append(rates, r)
		}
	}
	if v := os.Getenv("CHAOSLOOP_BENCH_SECONDS"); v != "" {
		fmt.Sscan(v, &secs)
	}
	for _, rate := range rates {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) { benchPipeline(b, l, rate, secs) })
	}
}

func benchPipeline(b *testing.B, l *testLab, rate float64, secs int) {
	for b.Loop() {
		before := l.engineCounters(b)
		r := runPipeline(b, l, ledger.DefaultParticipants(8), load.Config{Rate: rate, Duration: time.Duration(secs) * time.Second, Seed: 1, RunID: fmt.Sprintf("bench%d", time.Now().Unix())}, 3)
		// Latency of whole transfers, and of the client's own steps
		// (duplicate check, produce) to see where the rest goes.
		inv := map[string]map[string]time.Duration{}
		lats := map[string][]time.Duration{}
		oc := outcomes(r.events)
		dropped := 0
		for _, e := range r.events {
			switch {
			case e.Type == history.Dropped:
				dropped++
			case e.Type == history.Invoke:
				if inv[e.Op] == nil {
					inv[e.Op] = map[string]time.Duration{}
				}
				inv[e.Op][e.ID] = e.T
			case e.Type == history.OK && e.ID != "":
				if t0, ok := inv[e.Op][e.ID]; ok {
					lats[e.Op] = append(lats[e.Op], e.T-t0)
				}
			}
		}
		quantile := func(op string, p float64) time.Duration {
			lat := lats[op]
			if len(lat) == 0 {
				return 0
			}
			slices.Sort(lat)
			return lat[min(len(lat)-1, int(p*float64(len(lat))))]
		}
		q := func(p float64) time.Duration { return quantile(history.OpTransfer, p) }
		l.logEngineCounters(b, before, r.took)
		b.Logf("client steps: redis-set p50 %s p99 %s; kafka-produce p50 %s p99 %s",
			quantile(history.OpRedisSet, 0.5), quantile(history.OpRedisSet, 0.99), quantile(history.OpProduce, 0.5), quantile(history.OpProduce, 0.99))
		b.ReportMetric(float64(oc[history.OK])/r.took.Seconds(), "committed/s")
		b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(dropped), "dropped")
		b.ReportMetric(float64(oc[history.Info]), "unknown")
		var why []string
		for _, c := range r.report.Checks[:3] {
			why = append(why, c.ID+"="+string(c.Status))
			if c.Status != checks.Pass {
				b.Logf("%s: %s %+v", c.ID, c.Summary, c.Findings)
			}
		}
		b.Logf("offered %.0f/s for %ds: %v, dropped %d, p50 %s p99 %s; %s", rate, secs, oc, dropped, q(0.5), q(0.99), strings.Join(why, " "))
	}
}

// engineCounters are the engines' CPU time (user+system, per service) and
// Galera's counters (summed over members) at one moment.
type engineCounters struct {
	cpu    map[string]time.Duration
	galera map[string]float64
}

var galeraCounters = []string{"wsrep_replicated", "wsrep_flow_control_paused_ns", "wsrep_flow_control_sent",
	"wsrep_local_cert_failures", "wsrep_local_bf_aborts", "Innodb_row_lock_waits", "Innodb_row_lock_time", "Com_commit"}

func (l *testLab) engineCounters(tb testing.TB) engineCounters {
	c := engineCounters{cpu: map[string]time.Duration{}, galera: map[string]float64{}}
	for _, cl := range []*engines.Cluster{l.gc, l.kc, l.rc} {
		recs, _ := proc.List(cl.StateDir)
		for _, r := range recs {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.PID))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			var ut, st int64
			fmt.Sscan(f[11], &ut) // fields 14 and 15 of stat
			fmt.Sscan(f[12], &st)
			c.cpu[cl.Service] += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
		}
	}
	for _, dsn := range l.dsns {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			tb.Logf("galera counters: %v", err)
			continue
		}
		rows, err := db.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('" + strings.Join(galeraCounters, "','") + "')")
		if err == nil {
			for rows.Next() {
				var k string
				var v float64
				if rows.Scan(&k, &v) == nil {
					c.galera[k] += v
				}
			}
			rows.Close()
		}
		db.Close()
	}
	return c
}

func (l *testLab) logEngineCounters(tb testing.TB, before engineCounters, took time.Duration) {
	after := l.engineCounters(tb)
	var cpu, gal []string
	for _, svc := range []string{l.gc.Service, l.kc.Service, l.rc.Service} {
		cpu = append(cpu, fmt.Sprintf("%s %.0f%%", svc, 100*(after.cpu[svc]-before.cpu[svc]).Seconds()/took.Seconds()))
	}
	for _, k := range galeraCounters {
		gal = append(gal, fmt.Sprintf("%s=%.0f", k, after.galera[k]-before.galera[k]))
	}
	tb.Logf("engine CPU (of one core, all members): %s; galera (all members): %s", strings.Join(cpu, ", "), strings.Join(gal, " "))
}
