package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/load/wire"
)

// Several Stores, one per handler process, each preferring another member
// as handlers in three sites would, write through one member at a time
// (the writer named in chaosloop_writer) through a power-off of the
// writer, its rejoin by IST (the moment a failback used to split the
// writes over two members), and a power-off and rejoin of the writer
// elected in its place. Two Galera members taking the ledger's
// multi-statement batches at once lose acknowledged transfers (see the
// galera package's TestMultiWriterHotRow), so the test watches the Stores'
// writer choice, and each member's own count of transactions it
// originated, and at the end checks on every member that every
// acknowledged transfer is there exactly once, that money is conserved,
// that each position's history is a chain, and that the members hold the
// same tables.
func TestStoresShareOneWriterThroughKillAndRejoin(t *testing.T) {
	enginetest.RequireRoot(t)
	logs := &logCounter{n: map[string]int{}}
	log := slog.New(&countingHandler{h: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}), c: logs})
	e := galera.New(log)
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e.Install(sctx); err != nil {
		enginetest.RequireLab(t, "cannot install galera: "+err.Error())
	}
	c := enginetest.Cluster(t, "ledger-sw", 3, 81)
	enginetest.LogTails(t, c, mariadb.ErrLog)
	t0 := time.Now()
	require.NoError(t, e.Start(sctx, c))
	t.Logf("cluster up in %s", time.Since(t0).Round(time.Millisecond))
	var dsns []string
	for i := range c.Members {
		dsn, err := e.DSN(c, i)
		require.NoError(t, err)
		dsns = append(dsns, dsn)
	}
	memberOf := map[string]int{}
	for i, a := range e.Endpoints(c) {
		memberOf[a] = i
	}

	// One Store per site, each with its own member first.
	orders := [][]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}}
	stores := make([]*Store, len(orders))
	for k, order := range orders {
		var ds []string
		for _, i := range order {
			ds = append(ds, dsns[i])
		}
		s, err := Open(Options{DSNs: ds, Log: log.With("store", k), ProbeEvery: 300 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		stores[k] = s
	}
	parts := DefaultParticipants(6)
	require.NoError(t, stores[0].Setup(sctx, parts))
	for k, s := range stores {
		w, err := s.pick(sctx)
		require.NoError(t, err)
		require.Equal(t, 0, memberOf[s.addrs[w]], "store %d: the first writer is the one store 0 elected during Setup", k)
	}

	// Monitoring connections, one pool per member.
	mons := make([]*sql.DB, len(dsns))
	for i, dsn := range dsns {
		db, _, err := openDB(dsn, nil, nil)
		require.NoError(t, err)
		db.SetMaxIdleConns(1)
		t.Cleanup(func() { db.Close() })
		mons[i] = db
	}
	// writer is the member chaosloop_writer names, read through the first
	// member that answers (after a causality wait), and its epoch.
	writer := func() (int, int64) {
		t.Helper()
		var errs []error
		for i, db := range mons {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			addr, epoch, err := readWriter(rctx, db)
			cancel()
			if err == nil {
				w, ok := memberOf[addr]
				require.True(t, ok, "writer %q is no member", addr)
				return w, epoch
			}
			errs = append(errs, fmt.Errorf("member %d: %w", i, err))
		}
		t.Fatalf("no member names the writer: %v", errors.Join(errs...))
		return -1, 0
	}

	var tl timeline
	tl.start = time.Now()
	wctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var bg sync.WaitGroup
	// The Stores' writer choice every 200 ms.
	ws := &writerSampler{stores: stores, memberOf: memberOf, tl: &tl}
	bg.Go(func() { ws.run(wctx) })
	// Each member's count of transactions it originated, every 200 ms.
	cs := &commitSampler{dbs: mons, tl: &tl}
	bg.Go(func() { cs.run(wctx) })

	// The load.
	led := &tally{committed: map[string]int64{}, reserved: map[string]int64{}, unknown: map[string]string{},
		attempted: map[string]bool{}, errs: map[string]int{}}
	var stop atomic.Bool
	var workers sync.WaitGroup
	for k, s := range stores {
		for w := range 3 {
			workers.Go(func() { led.worker(s, k, w, parts, &stop, &tl) })
		}
	}
	stopWorkers := func() {
		stop.Store(true)
		workers.Wait()
	}
	defer stopWorkers()

	// allUse waits until every Store writes through member w.
	allUse := func(w int, what string) {
		t.Helper()
		require.Eventually(t, func() bool {
			for _, u := range ws.using() {
				if u != w {
					return false
				}
			}
			return true
		}, 30*time.Second, 100*time.Millisecond, "%s: every store uses member %d; they use %v", what, w, ws.using())
	}
	kill := func(i int) {
		t.Helper()
		enginetest.Kill(t, c.StateDir, mariadb.ProcName(c.Members[i]), 10*time.Second)
		tl.logf(t, "member %d SIGKILLed", i)
	}
	rejoin := func(i int) {
		t.Helper()
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		require.NoError(t, e.StartMember(rctx, c, i))
		tl.logf(t, "member %d rejoined, Synced, after %s", i, time.Since(t0).Round(time.Millisecond))
	}

	tl.phase(t, "steady")
	time.Sleep(15 * time.Second)
	w1, epoch := writer()
	require.EqualValues(t, 1, epoch)
	allUse(w1, "steady")

	tl.phase(t, "writer-1-killed")
	kill(w1)
	time.Sleep(15 * time.Second)
	w2, epoch := writer()
	require.NotEqual(t, w1, w2, "a new writer once the old one left the Primary component")
	require.EqualValues(t, 2, epoch)
	allUse(w2, "after the first writer's power-off")

	tl.phase(t, "rejoin-1")
	rejoin(w1)
	tl.phase(t, "after-rejoin-1")
	time.Sleep(20 * time.Second)
	w, epoch := writer()
	require.Equal(t, w2, w, "no failback to the rejoined member")
	require.EqualValues(t, 2, epoch)
	allUse(w2, "after the rejoin")

	// The writer elected in the first one's place loses power too.
	tl.phase(t, "writer-2-killed")
	kill(w2)
	time.Sleep(10 * time.Second)
	tl.phase(t, "rejoin-2")
	rejoin(w2)
	tl.phase(t, "after-rejoin-2")
	time.Sleep(15 * time.Second)
	w3, epoch := writer()
	require.NotEqual(t, w2, w3)
	require.EqualValues(t, 3, epoch)
	allUse(w3, "after the second rejoin")
	tl.phase(t, "stopping")
	stopWorkers()
	stopAll()
	bg.Wait()
	tl.logf(t, "load stopped")

	// What happened.
	led.mu.Lock()
	defer led.mu.Unlock()
	t.Logf("writers: %d → %d → %d; log: %d elections, %d writer switches, %d members failed, %d healthy again, %d still retrying",
		w1, w2, w3, logs.get("ledger: elected a new writer"), logs.get("ledger: using member"),
		logs.get("ledger: member failed, failing over"), logs.get("ledger: member healthy again"), logs.get("ledger: still retrying"))
	t.Logf("transfers: attempted %d, prepared (acked RESERVED) %d, committed (acked COMMITTED) %d, unknown outcome %d, duplicates answered %d, unexpected outcomes %d",
		len(led.attempted), len(led.reserved), len(led.committed), len(led.unknown), led.duplicates, len(led.unexpected))
	t.Logf("acked commits by phase: %v", tl.commitsByPhase())
	t.Logf("errors: %s", topErrors(led.errs, 8))
	ws.report(t)
	cs.report(t)
	require.Empty(t, led.unexpected, "transfers with an outcome other than RESERVED/COMMITTED")
	require.Equal(t, 3, logs.get("ledger: elected a new writer"), "elections: the first writer, and one per power-off of the writer")
	byPhase := tl.commitsByPhase()
	for _, p := range []string{"steady", "writer-1-killed", "after-rejoin-1", "after-rejoin-2"} {
		require.Positive(t, byPhase[p], "acked commits during %s", p)
	}

	// Every member, once all are Synced, holds the same ledger.
	enginetest.WaitStatus(t, func(ctx context.Context) (engines.Status, error) { return e.Status(ctx, c) }, "all synced",
		enginetest.All(enginetest.MemberIs(0, true, true, "synced", "size=3"),
			enginetest.MemberIs(1, true, true, "synced", "size=3"), enginetest.MemberIs(2, true, true, "synced", "size=3")))
	var sums []string
	for i, dsn := range dsns {
		sum := led.checkMember(t, i, dsn)
		sums = append(sums, sum)
	}
	for i := 1; i < len(sums); i++ {
		require.Equal(t, sums[0], sums[i], "member %d's tables differ from member 0's", i)
	}
	digests := Digests(ctx, Options{DSNs: dsns}, "ledger")
	for i, d := range digests {
		require.Empty(t, d.Error, "member %d digest", i)
		require.Equal(t, digests[0].Digest, d.Digest, "member %d digest", i)
	}
	t.Logf("members identical: %s", digests[0].Digest)

	// The Stores' choice, and the members' own commits, never split.
	require.Less(t, ws.maxSplit, 2*time.Second, "two stores wrote through different members for too long")
	require.Less(t, cs.maxOverlap, 2*time.Second, "two members originated transactions at once for too long")
}

// timeline stamps events with the time since the load started.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	cur   string
	by    map[string]int
}

func (tl *timeline) logf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("[%6.1fs] %s", time.Since(tl.start).Seconds(), fmt.Sprintf(format, args...))
}

func (tl *timeline) phase(t *testing.T, name string) {
	t.Helper()
	tl.mu.Lock()
	tl.cur = name
	tl.mu.Unlock()
	tl.logf(t, "phase %s", name)
}

func (tl *timeline) committed(n int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.by == nil {
		tl.by = map[string]int{}
	}
	tl.by[tl.cur] += n
}

func (tl *timeline) commitsByPhase() map[string]int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return maps.Clone(tl.by)
}

// tally is what the workers were told.
type tally struct {
	mu sync.Mutex
	// committed: acknowledged COMMITTED (fulfil answered COMMITTED, no
	// error); reserved: acknowledged RESERVED by the prepare; amounts.
	committed, reserved map[string]int64
	// unknown: a prepare or fulfil that failed (it may have committed).
	unknown    map[string]string
	attempted  map[string]bool
	unexpected []string
	duplicates int
	errs       map[string]int
}

// worker prepares batches of 1–3 transfers through s and fulfils those
// that came back RESERVED, until stop.
func (l *tally) worker(s *Store, k, w int, parts Participants, stop *atomic.Bool, tl *timeline) {
	seq := 0
	for !stop.Load() {
		ps := make([]wire.Prepare, 1+rand.IntN(3))
		amounts := map[string]int64{}
		l.mu.Lock()
		for j := range ps {
			seq++
			a := rand.IntN(len(parts.Names))
			b := rand.IntN(len(parts.Names) - 1)
			if b >= a {
				b++
			}
			ps[j] = wire.Prepare{TransferID: fmt.Sprintf("sw-s%d-w%d-%d", k, w, seq), Payer: parts.Names[a], Payee: parts.Names[b],
				Amount: 1 + rand.Int64N(100), Currency: parts.Currency}
			amounts[ps[j].TransferID] = ps[j].Amount
			l.attempted[ps[j].TransferID] = true
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res := s.PrepareBatch(ctx, ps)
		cancel()
		ids := make([]string, len(ps))
		for j, p := range ps {
			ids[j] = p.TransferID
		}
		reserved, failed := l.record("prepare", wire.StateReserved, ids, res, amounts, l.reserved)
		if len(reserved) > 0 {
			fs := make([]wire.Fulfil, len(reserved))
			for j, id := range reserved {
				fs[j] = wire.Fulfil{TransferID: id, Fulfilment: "ok"}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res := s.FulfilBatch(ctx, fs)
			cancel()
			committed, ffailed := l.record("fulfil", wire.StateCommitted, reserved, res, amounts, l.committed)
			failed = failed || ffailed
			tl.committed(len(committed))
		}
		if failed {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// record tallies the results of one batch (ids[j] is res[j]'s transfer):
// the transfers answered want go into got with their amounts and are
// returned; an error leaves its transfer unknown (it may have committed)
// and makes failed true; any other answer is unexpected.
func (l *tally) record(op, want string, ids []string, res []Result, amounts, got map[string]int64) (ok []string, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for j, r := range res {
		id := ids[j]
		switch {
		case r.Err != nil:
			l.unknown[id] = op + ": " + r.Err.Error()
			l.errs[op+": "+errClass(r.Err)]++
			failed = true
		case r.State == want:
			got[id] = amounts[id]
			if r.Duplicate {
				l.duplicates++
			}
			ok = append(ok, id)
		default:
			l.unexpected = append(l.unexpected, fmt.Sprintf("%s %s: %+v", op, id, r.Outcome))
		}
	}
	return ok, failed
}

// errClass shortens an error for counting.
func errClass(err error) string {
	s := err.Error()
	if i := strings.Index(s, "(last error:"); i >= 0 {
		// ledger: context deadline exceeded (last error: …)
		s = s[:i] + "(last: " + strings.TrimSpace(s[i+len("(last error:"):])
	}
	if len(s) > 90 {
		s = s[:90]
	}
	return s
}

func topErrors(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i, e := range all {
		if i == n {
			out = append(out, fmt.Sprintf("… %d more kinds", len(all)-n))
			break
		}
		out = append(out, fmt.Sprintf("%d× %q", e.v, e.k))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

// checkMember checks member i's ledger against what the workers were
// told and returns its tables' checksums.
func (l *tally) checkMember(t *testing.T, i int, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Every read, on every connection of the pool, waits until this
	// member applied what was committed anywhere before it (the session
	// variable wsrep_sync_wait=1).
	db, _, err := openDB(dsn, nil, syncWait)
	require.NoError(t, err)
	defer db.Close()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1")
	require.NoError(t, err)

	// State changes per transfer and state.
	rows := map[string]map[string]int{}
	rs, err := conn.QueryContext(ctx, "SELECT transferId, transferStateId, COUNT(*) FROM transferStateChange GROUP BY transferId, transferStateId")
	require.NoError(t, err)
	for rs.Next() {
		var id, st string
		var n int
		require.NoError(t, rs.Scan(&id, &st, &n))
		if rows[id] == nil {
			rows[id] = map[string]int{}
		}
		rows[id][st] = n
	}
	require.NoError(t, rs.Err())
	rs.Close()

	var f history.Final
	require.NoError(t, readFinal(ctx, db, &f), "member %d", i)

	var problems []string
	bad := func(format string, args ...any) {
		if len(problems) < 30 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	// Every acknowledged transfer is there, in its state, exactly once.
	for id, amount := range l.committed {
		tr, ok := f.Transfers[id]
		switch {
		case !ok:
			bad("acked COMMITTED %s missing", id)
		case tr.State != wire.StateCommitted || rows[id][stateCommitted] != 1 || rows[id][stateReserved] != 1:
			bad("acked COMMITTED %s: state %s, state rows %v", id, tr.State, rows[id])
		case tr.Amount != amount:
			bad("acked COMMITTED %s: amount %d, sent %d", id, tr.Amount, amount)
		}
	}
	for id := range l.reserved {
		tr, ok := f.Transfers[id]
		switch {
		case !ok:
			bad("acked RESERVED %s missing", id)
		case rows[id][stateReserved] != 1 || rows[id][stateCommitted] > 1:
			bad("acked RESERVED %s: state %s, state rows %v", id, tr.State, rows[id])
		}
	}
	// Nothing appears that no worker sent, and nothing is left half done.
	for id, tr := range f.Transfers {
		if !l.attempted[id] {
			bad("transfer %s was never sent", id)
		}
		if tr.State != wire.StateReserved && tr.State != wire.StateCommitted {
			bad("transfer %s in state %s", id, tr.State)
		}
	}

	// Money conserved (the money check's rule): positions sum to the
	// amounts still RESERVED.
	var sum, pending int64
	for _, p := range f.Positions {
		sum += p.Value
	}
	for _, tr := range f.Transfers {
		if tr.State == wire.StateReserved {
			pending += tr.Amount
		}
	}
	if sum != pending {
		bad("positions sum to %d, %d still reserved: %+d created or destroyed", sum, pending, sum-pending)
	}
	// Each position's change rows form a chain from 0 to its value; each
	// transfer moved a position once per step, a COMMITTED one twice.
	last := map[string]int64{}
	moves := map[[2]string]int{}
	for _, pc := range f.PositionChanges {
		if pc.Value != last[pc.Participant]+pc.Change {
			bad("%s: change row of %s (%s %+d) says %d, previous %d", pc.Participant, pc.TransferID, pc.Kind, pc.Change, pc.Value, last[pc.Participant])
		}
		last[pc.Participant] = pc.Value
		moves[[2]string{pc.TransferID, pc.Kind}]++
	}
	for _, p := range f.Positions {
		if p.Value != last[p.Participant] {
			bad("%s: position %d, last change row %d", p.Participant, p.Value, last[p.Participant])
		}
	}
	for k, n := range moves {
		if n != 1 {
			bad("%s moved %d times for %s", k[0], n, k[1])
		}
	}
	for id, tr := range f.Transfers {
		want := map[string]int{"reserve": 1}
		if tr.State == wire.StateCommitted {
			want["commit"] = 1
		}
		if moves[[2]string{id, "reserve"}] != want["reserve"] || moves[[2]string{id, "commit"}] != want["commit"] {
			bad("%s %s: %d reserve, %d commit moves", id, tr.State, moves[[2]string{id, "reserve"}], moves[[2]string{id, "commit"}])
		}
	}

	// Checksums of every table of the ledger and of the writer row.
	var sums []string
	for _, tbl := range []string{"participant", "participantCurrency", "participantPosition", "participantLimit", "transfer",
		"transferParticipant", "transferStateChange", "participantPositionChange", "transferFulfilment", writerTable} {
		var name string
		var sum sql.NullInt64
		require.NoError(t, conn.QueryRowContext(ctx, "CHECKSUM TABLE "+tbl).Scan(&name, &sum))
		sums = append(sums, fmt.Sprintf("%s=%d", tbl, sum.Int64))
	}
	t.Logf("member %d: %d transfers (%d COMMITTED), %d position changes, positions sum %d = %d reserved; %d problems",
		i, len(f.Transfers), countState(f.Transfers, wire.StateCommitted), len(f.PositionChanges), sum, pending, len(problems))
	require.Empty(t, problems, "member %d", i)
	return strings.Join(sums, " ")
}

func countState(m map[string]history.LedgerTransfer, st string) int {
	n := 0
	for _, tr := range m {
		if tr.State == st {
			n++
		}
	}
	return n
}

// writerSampler records which member each Store writes through.
type writerSampler struct {
	stores   []*Store
	memberOf map[string]int
	tl       *timeline

	mu   sync.Mutex
	last []int
	// split: since when Stores that know a usable writer disagree.
	split    time.Time
	maxSplit time.Duration
	splits   int
	// The same for the raw choice (known, usable or not).
	rawSplit    time.Time
	maxRawSplit time.Duration
	changes     []string
	samples     int
}

// using is each Store's writer as pick would return it without asking
// the cluster (-1: it would elect or wait).
func (ws *writerSampler) using() []int {
	out := make([]int, len(ws.stores))
	for k := range ws.stores {
		out[k], _ = ws.of(k)
	}
	return out
}

func (ws *writerSampler) of(k int) (use, raw int) {
	s := ws.stores[k]
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		return -1, -1
	}
	raw = ws.memberOf[s.addrs[s.cur]]
	if s.bad[s.cur] {
		return -1, raw
	}
	return raw, raw
}

func disagree(ws []int) bool {
	w := -1
	for _, x := range ws {
		if x < 0 {
			continue
		}
		if w >= 0 && x != w {
			return true
		}
		w = x
	}
	return false
}

func (ws *writerSampler) run(ctx context.Context) {
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		now := time.Now()
		use := make([]int, len(ws.stores))
		raw := make([]int, len(ws.stores))
		for k := range ws.stores {
			use[k], raw[k] = ws.of(k)
		}
		ws.mu.Lock()
		ws.samples++
		if !slices.Equal(use, ws.last) {
			ws.changes = append(ws.changes, fmt.Sprintf("%.1fs %v", now.Sub(ws.tl.start).Seconds(), use))
			ws.last = use
		}
		if disagree(use) {
			if ws.split.IsZero() {
				ws.split = now
				ws.splits++
			}
			ws.maxSplit = max(ws.maxSplit, now.Sub(ws.split))
		} else {
			ws.split = time.Time{}
		}
		if disagree(raw) {
			if ws.rawSplit.IsZero() {
				ws.rawSplit = now
			}
			ws.maxRawSplit = max(ws.maxRawSplit, now.Sub(ws.rawSplit))
		} else {
			ws.rawSplit = time.Time{}
		}
		ws.mu.Unlock()
	}
}

func (ws *writerSampler) report(t *testing.T) {
	t.Helper()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t.Logf("stores' writers (member per store, -1 = electing/waiting), %d samples: %s", ws.samples, strings.Join(ws.changes, ", "))
	t.Logf("stores disagreeing on a usable writer: %d times, longest %s (sampled every 200 ms; 0 = only single samples); on their raw choice, longest %s",
		ws.splits, ws.maxSplit, ws.maxRawSplit)
}

// commitSampler reads every member's wsrep_local_commits (transactions it
// originated): two members whose counts grow in the same period both took
// writes.
type commitSampler struct {
	dbs []*sql.DB
	tl  *timeline

	mu         sync.Mutex
	prev       []int64 // -1: no sample
	overlap    time.Time
	maxOverlap time.Duration
	overlaps   int
	periods    int
	by         []int64 // local commits per member seen growing
	detail     []string
}

func (cs *commitSampler) run(ctx context.Context) {
	cs.prev = make([]int64, len(cs.dbs))
	cs.by = make([]int64, len(cs.dbs))
	for i := range cs.prev {
		cs.prev[i] = -1
	}
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		now := time.Now()
		cur := make([]int64, len(cs.dbs))
		for i, db := range cs.dbs {
			cur[i] = -1
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			var name string
			var v int64
			if err := db.QueryRowContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep_local_commits'").Scan(&name, &v); err == nil {
				cur[i] = v
			}
			cancel()
		}
		cs.mu.Lock()
		var grew []int
		var deltas []int64
		for i := range cur {
			if cs.prev[i] >= 0 && cur[i] > cs.prev[i] {
				grew = append(grew, i)
				deltas = append(deltas, cur[i]-cs.prev[i])
				cs.by[i] += cur[i] - cs.prev[i]
			}
		}
		cs.periods++
		if len(grew) > 1 {
			if cs.overlap.IsZero() {
				cs.overlap = now
				cs.overlaps++
			}
			cs.maxOverlap = max(cs.maxOverlap, now.Sub(cs.overlap))
			if len(cs.detail) < 20 {
				cs.detail = append(cs.detail, fmt.Sprintf("%.1fs members %v +%v", now.Sub(cs.tl.start).Seconds(), grew, deltas))
			}
		} else {
			cs.overlap = time.Time{}
		}
		cs.prev = cur
		cs.mu.Unlock()
	}
}

func (cs *commitSampler) report(t *testing.T) {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	t.Logf("members' own commits (wsrep_local_commits growth while sampled) %v in %d periods of 200 ms; periods where two members committed: %d runs, longest %s %v",
		cs.by, cs.periods, cs.overlaps, cs.maxOverlap, cs.detail)
}

// logCounter counts log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounter) get(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

type countingHandler struct {
	h slog.Handler
	c *logCounter
}

func (h *countingHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.c.mu.Lock()
	h.c.n[r.Message]++
	h.c.mu.Unlock()
	return h.h.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &countingHandler{h: h.h.WithAttrs(as), c: h.c}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{h: h.h.WithGroup(name), c: h.c}
}
