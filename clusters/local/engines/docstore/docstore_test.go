package docstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	etcdengine "github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
)

// Deadlines in these tests bound waits for conditions and are sized for a
// loaded 2-core CI machine (other labs' tests running alongside), not an
// idle one. waitLong is for anything involving an election or a restart.
const waitLong = 3 * time.Minute

// cleanupReserve is kept free before go test's own deadline: its timeout
// panics without running t.Cleanup, which would leave the lab running.
const cleanupReserve = 3 * time.Minute

// testCtx is a context for a test's body that ends at most after d, and
// early enough before go test's -timeout for the cleanups to run.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	deadline := time.Now().Add(d)
	if td, ok := t.Deadline(); ok && td.Add(-cleanupReserve).Before(deadline) {
		deadline = td.Add(-cleanupReserve)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// waitStatus polls Status until cond accepts it and returns that Status:
// one Status is a snapshot, and on a loaded machine a Patroni may answer
// late or leadership still be settling.
func waitStatus(t *testing.T, ctx context.Context, e *Engine, c *engines.Cluster, what string, cond func(engines.Status) error) engines.Status {
	t.Helper()
	var got engines.Status
	require.NoError(t, engines.WaitFor(ctx, waitLong, 300*time.Millisecond, what, func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		if err := cond(st); err != nil {
			return err
		}
		got = st
		return nil
	}))
	return got
}

// writableWithLeader accepts a Status that is writable with a leader up.
func writableWithLeader(st engines.Status) error {
	if !st.Writable || leaderOf(st) < 0 {
		return fmt.Errorf("not writable or no leader: %+v", st.Members)
	}
	return nil
}

// waitCount waits until n exceeds want (writes going through).
func waitCount(t *testing.T, ctx context.Context, what string, want int, n func() int) {
	t.Helper()
	require.NoError(t, engines.WaitFor(ctx, waitLong, 100*time.Millisecond, what, func(context.Context) error {
		if got := n(); got <= want {
			return fmt.Errorf("%d acknowledged writes, waiting for more than %d", got, want)
		}
		return nil
	}))
}

// insert inserts doc, retrying while the service cannot take it (no
// writable leader for a moment). A duplicate key on a retry means an
// earlier attempt that reported an error did commit.
func insert(t *testing.T, ctx context.Context, coll *mongo.Collection, doc bson.M) {
	t.Helper()
	tries := 0
	require.NoError(t, engines.WaitFor(ctx, waitLong, 500*time.Millisecond, fmt.Sprintf("insert %v", doc), func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		tries++
		_, err := coll.InsertOne(ctx, doc)
		if tries > 1 && mongo.IsDuplicateKeyError(err) {
			return nil
		}
		return err
	}))
}

// findOne reads the document with _id id, retrying failed reads: a read
// that fails says nothing about the data. A read that completes without
// the document is an answer, and fails the test at once.
func findOne(t *testing.T, ctx context.Context, coll *mongo.Collection, id any) bson.M {
	t.Helper()
	var got bson.M
	var notFound bool
	require.NoError(t, engines.WaitFor(ctx, waitLong, 500*time.Millisecond, fmt.Sprintf("find %v", id), func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err := coll.FindOne(ctx, bson.M{"_id": id}).Decode(&got)
		if errors.Is(err, mongo.ErrNoDocuments) {
			notFound = true
			return nil
		}
		return err
	}))
	require.False(t, notFound, "document %v not found", id)
	return got
}

// cgroup2Root is where cgroup v2 is mounted (hybrid hosts mount it under
// /sys/fs/cgroup/unified).
func cgroup2Root() string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) >= 3 && fs[2] == "cgroup2" {
			return fs[1]
		}
	}
	return ""
}

// killCgroup SIGKILLs every process of a member at once, as a power-off
// does, and waits until they are gone.
func killCgroup(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644))
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		return err == nil && strings.TrimSpace(string(b)) == ""
	}, time.Minute, 20*time.Millisecond, "processes of %s still alive after cgroup.kill", dir)
	// On this kernel a cgroup keeps killing every process that enters it
	// after cgroup.kill; a fresh directory lets the member start again.
	// rmdir can be EBUSY for a moment after cgroup.procs empties.
	require.Eventually(t, func() bool { return os.Remove(dir) == nil }, time.Minute, 20*time.Millisecond,
		"cannot remove cgroup %s", dir)
	require.NoError(t, os.Mkdir(dir, 0o755))
}

// cgroupRSS sums the proportional set size (RSS with shared pages split
// among their users, so PostgreSQL's shared buffers count once) of the
// processes in a cgroup, in MiB.
func cgroupRSS(dir string) (int, map[string]int) {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	total, by := 0, map[string]int{}
	for _, pid := range strings.Fields(string(b)) {
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		st, _ := os.ReadFile("/proc/" + pid + "/smaps_rollup")
		for _, l := range strings.Split(string(st), "\n") {
			if rest, ok := strings.CutPrefix(l, "Pss:"); ok {
				kb, _ := strconv.Atoi(strings.Fields(rest)[0])
				total += kb
				by[strings.TrimSpace(string(comm))] += kb
			}
		}
	}
	for k, v := range by {
		by[k] = v / 1024
	}
	return total / 1024, by
}

// newLab sets up a 3-member cluster, each member in its own cgroup, and
// installs the engine. Members are on 127.0.0.41-43, or with inNetns each in
// its own network namespace (198.18.0.1-3 on one bridge), as in the lab.
func newLab(t *testing.T, inNetns bool) (*Engine, *engines.Cluster) {
	t.Helper()
	if os.Geteuid() != 0 {
		enginetest.RequireLab(t, "docstore tests need root")
	}
	cg := cgroup2Root()
	if cg == "" {
		enginetest.RequireLab(t, "no cgroup v2 mount")
	}
	log := enginetest.Log(t)
	e := New(log, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "install: "+err.Error())
	}
	// PostgreSQL runs as postgres and must reach its data dir (t.TempDir's
	// parents are root-only); kept with the logs when the test fails.
	base := enginetest.NewEvidence(t).WorkDir("docstore")
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	cgBase := filepath.Join(cg, "chaosloop-docstore-test-"+tag)
	require.NoError(t, os.Mkdir(cgBase, 0o755))
	t.Cleanup(func() {
		if err := os.Remove(cgBase); err != nil {
			t.Errorf("cgroup %s left behind: %v", cgBase, err)
		}
	})
	var netnses []string
	if inNetns {
		netnses = makeNetns(t, tag, 3)
	}
	c := &engines.Cluster{Service: "mongodb", StateDir: filepath.Join(base, "state")}
	for i := range 3 {
		name := fmt.Sprintf("mongodb-%d", i+1)
		dir := filepath.Join(cgBase, name)
		require.NoError(t, os.Mkdir(dir, 0o755))
		m := engines.Member{
			Index: i, Name: name, Node: fmt.Sprintf("n%d", i+1),
			Addr:    netip.AddrFrom4([4]byte{127, 0, 0, byte(41 + i)}),
			DataDir: filepath.Join(base, name, "data"), LogDir: filepath.Join(base, name, "log"),
			Cgroup: dir,
		}
		if inNetns {
			m.NetNS = netnses[i]
			m.Addr = netip.AddrFrom4([4]byte{198, 18, 0, byte(1 + i)})
		}
		c.Members = append(c.Members, m)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupReserve)
		defer cancel()
		if err := e.Stop(ctx, c); err != nil {
			t.Errorf("stop: %v", err)
		}
		// Anything Stop missed goes with its cgroup.
		for _, m := range c.Members {
			b, _ := os.ReadFile(filepath.Join(m.Cgroup, "cgroup.procs"))
			if len(strings.TrimSpace(string(b))) > 0 {
				t.Errorf("%s: processes left after Stop: %s", m.Name, strings.Fields(string(b)))
				_ = os.WriteFile(filepath.Join(m.Cgroup, "cgroup.kill"), []byte("1"), 0o644)
			}
			deadline := time.Now().Add(time.Minute)
			for os.Remove(m.Cgroup) != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	return e, c
}

// makeNetns creates n host namespaces on one bridge in a switch namespace,
// host i with 198.18.0.(i+1)/24, and removes them at cleanup.
func makeNetns(t *testing.T, tag string, n int) []string {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	sw := "ds-" + tag + "-sw"
	run("netns", "add", sw)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", sw).Run() })
	run("-n", sw, "link", "add", "br0", "type", "bridge")
	run("-n", sw, "link", "set", "br0", "up")
	var names []string
	for i := range n {
		ns := fmt.Sprintf("ds-%s-h%d", tag, i+1)
		run("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		// Created inside the host namespace, so no name clashes in ours.
		run("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", fmt.Sprintf("p%d", i+1), "netns", sw)
		run("-n", ns, "addr", "add", fmt.Sprintf("198.18.0.%d/24", i+1), "dev", "eth0")
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", ns, "link", "set", "eth0", "up")
		run("-n", sw, "link", "set", fmt.Sprintf("p%d", i+1), "master", "br0", "up")
		names = append(names, ns)
	}
	return names
}

// connect is a client of member i's FerretDB, dialling from inside the
// member's namespace when it has one.
func connect(t *testing.T, e *Engine, c *engines.Cluster, i int) *mongo.Client {
	t.Helper()
	opts := options.Client().ApplyURI(e.Endpoints(c)[i]).
		SetWriteConcern(writeconcern.Majority()).
		SetServerSelectionTimeout(3 * time.Second).
		SetRetryWrites(false).
		SetDialer(Dialer(c.Members[i]))
	cl, err := mongo.Connect(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	return cl
}

func leaderOf(st engines.Status) int {
	for i, m := range st.Members {
		if m.Role == RoleLeader && m.Up {
			return i
		}
	}
	return -1
}

func TestDocstoreFailover(t *testing.T) {
	e, c := newLab(t, false)
	ctx := testCtx(t, 20*time.Minute)

	v, err := e.Version(ctx)
	require.NoError(t, err)
	require.Contains(t, v, "FerretDB v1.24.2")
	require.Contains(t, v, "substitutes for MongoDB")
	t.Logf("version: %s", v)

	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("startup: %s", time.Since(t0).Round(time.Millisecond))
	for _, m := range c.Members {
		total, by := cgroupRSS(m.Cgroup)
		t.Logf("memory (PSS) %s: %d MiB %v", m.Name, total, by)
	}
	// Idempotent: a second Start leaves the running cluster alone.
	require.NoError(t, e.Start(ctx, c))

	t1 := time.Now()
	st, err := e.Status(ctx, c)
	require.NoError(t, err)
	t.Logf("status (took %s): %+v", time.Since(t1).Round(time.Microsecond), st)
	// Start returned with every member running; Status is polled because
	// one probe of a CPU-starved Patroni can come back late.
	st = waitStatus(t, ctx, e, c, "whole cluster healthy", func(st engines.Status) error {
		if !st.Writable {
			return fmt.Errorf("not writable: %+v", st.Members)
		}
		roles := map[string]int{}
		for _, m := range st.Members {
			if !m.Up || !m.Healthy {
				return fmt.Errorf("%s not up and healthy: %s", m.Name, m.Detail)
			}
			roles[m.Role]++
		}
		if roles[RoleLeader] != 1 || roles[RoleSyncStandby] != 1 {
			return fmt.Errorf("want one leader and one sync standby: %+v", st.Members)
		}
		return nil
	})

	require.NoError(t, e.Prepare(ctx, c, "chaos", []string{"kv", "acked"}))
	require.NoError(t, e.Prepare(ctx, c, "chaos", []string{"kv", "acked"}))

	// Write through one member's FerretDB, read through another's.
	insert(t, ctx, connect(t, e, c, 0).Database("chaos").Collection("kv"), bson.M{"_id": "k1", "v": 42})
	got := findOne(t, ctx, connect(t, e, c, 2).Database("chaos").Collection("kv"), "k1")
	require.EqualValues(t, 42, got["v"])

	// Power off the leader's whole member (etcd, Patroni, PostgreSQL,
	// FerretDB) while a client writes through a surviving member.
	old := leaderOf(st)
	require.GreaterOrEqual(t, old, 0)
	via := (old + 1) % len(c.Members)
	w := startWriter(ctx, connect(t, e, c, via).Database("chaos").Collection("acked"), 0)
	t.Cleanup(w.stop)
	waitCount(t, ctx, "writes go through before the kill", 100, w.count)

	killedAt := time.Now()
	killCgroup(t, c.Members[old].Cgroup)
	t.Logf("killed leader %s", c.Members[old].Name)

	newLeader := -1
	require.NoError(t, engines.WaitFor(ctx, waitLong, 200*time.Millisecond, "new leader", func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		if st.Members[old].Up {
			return fmt.Errorf("killed member %s still reported up", c.Members[old].Name)
		}
		if l := leaderOf(st); l >= 0 && l != old {
			newLeader = l
			return nil
		}
		return fmt.Errorf("no new leader: %+v", st.Members)
	}))
	t.Logf("new leader %s after %s", c.Members[newLeader].Name, time.Since(killedAt).Round(time.Millisecond))
	waitCount(t, ctx, "writes resume after failover", w.count()+100, w.count)
	w.stop()
	ackedIDs, unknown, maxGap := w.result()
	t.Logf("writes: %d acknowledged, %d unknown (failed or timed out); write outage (longest gap between acks) %s",
		len(ackedIDs), unknown, maxGap.Round(time.Millisecond))

	// Restart the old leader: it must rejoin as a replica (pg_rewind).
	t1 = time.Now()
	require.NoError(t, e.StartMember(ctx, c, old))
	waitStatus(t, ctx, e, c, "old leader rejoins", func(st engines.Status) error {
		m := st.Members[old]
		if !m.Up || !m.Healthy || (m.Role != RoleReplica && m.Role != RoleSyncStandby) {
			return fmt.Errorf("%+v", m)
		}
		if !st.Writable {
			return errors.New("not writable")
		}
		return nil
	})
	t.Logf("old leader %s rejoined after %s", c.Members[old].Name, time.Since(t1).Round(time.Millisecond))
	plog, _ := os.ReadFile(filepath.Join(c.Members[old].LogDir, "patroni.log"))
	for _, l := range strings.Split(string(plog), "\n") {
		if strings.Contains(l, "rewind") || strings.Contains(l, "crash recovery") {
			t.Logf("old leader: %s", l)
		}
	}

	// Every acknowledged write is there, read through the rejoined
	// member's FerretDB (a fresh instance).
	requireAllThere(t, ctx, connect(t, e, c, old).Database("chaos").Collection("acked"), ackedIDs)
}

// requireAllThere fails if any acknowledged _id is missing from coll. Only
// a read that completes counts: one that fails (no writable leader yet,
// leadership settling after a heal or a rejoin) is retried, never taken
// for loss.
func requireAllThere(t *testing.T, ctx context.Context, coll *mongo.Collection, ackedIDs []int) {
	t.Helper()
	var present map[int]bool
	failed := 0
	require.NoError(t, engines.WaitFor(ctx, waitLong, time.Second, "a complete read of every document", func(ctx context.Context) error {
		ids, err := readIDs(ctx, coll)
		if err != nil {
			failed++
			return err
		}
		present = ids
		return nil
	}))
	if failed > 0 {
		t.Logf("%d reads failed (service not readable yet) before one completed", failed)
	}
	var lost []int
	for _, id := range ackedIDs {
		if !present[id] {
			lost = append(lost, id)
		}
	}
	t.Logf("read back %d documents; %d of %d acknowledged writes lost", len(present), len(lost), len(ackedIDs))
	require.Empty(t, lost, "acknowledged writes lost")
}

// readIDs reads every document's integer _id in one go.
func readIDs(ctx context.Context, coll *mongo.Collection) (map[int]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cur, err := coll.Find(ctx, bson.M{})
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.Background()) //nolint:errcheck
	present := map[int]bool{}
	for cur.Next(ctx) {
		var d struct {
			ID int `bson:"_id"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		present[d.ID] = true
	}
	return present, cur.Err()
}

// writer inserts {_id: base+n} for n = 0, 1, ... one at a time and records
// which inserts were acknowledged.
type writer struct {
	mu      sync.Mutex
	acked   []int
	unknown int
	lastAck time.Time
	maxGap  time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
}

func startWriter(ctx context.Context, coll *mongo.Collection, base int) *writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for n := base; ctx.Err() == nil; n++ {
			octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := coll.InsertOne(octx, bson.M{"_id": n})
			ocancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, n)
				now := time.Now()
				if !w.lastAck.IsZero() && now.Sub(w.lastAck) > w.maxGap {
					w.maxGap = now.Sub(w.lastAck)
				}
				w.lastAck = now
			} else {
				// A failed or timed-out write may have committed:
				// it counts as unknown, never as lost.
				w.unknown++
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) stop() {
	w.cancel()
	<-w.done
}

func (w *writer) result() ([]int, int, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.acked...), w.unknown, w.maxGap
}

// TestDocstoreNetns runs the members in their own network namespaces, as the
// lab does: clients and Status dial from inside them.
func TestDocstoreNetns(t *testing.T) {
	e, c := newLab(t, true)
	ctx := testCtx(t, 15*time.Minute)
	t0 := time.Now()
	require.NoError(t, e.Start(ctx, c))
	t.Logf("startup: %s", time.Since(t0).Round(time.Millisecond))
	require.NoError(t, e.Prepare(ctx, c, "chaos", []string{"kv"}))
	insert(t, ctx, connect(t, e, c, 0).Database("chaos").Collection("kv"), bson.M{"_id": "k", "v": "x"})
	got := findOne(t, ctx, connect(t, e, c, 2).Database("chaos").Collection("kv"), "k")
	require.Equal(t, "x", got["v"])

	st := waitStatus(t, ctx, e, c, "writable with a leader", writableWithLeader)
	// A graceful stop of a replica: it is reported down, the service
	// stays writable, and it comes back healthy.
	leader := leaderOf(st)
	rep := (leader + 1) % len(c.Members)
	t1 := time.Now()
	require.NoError(t, e.StopMember(ctx, c, rep))
	t.Logf("stopped replica %s in %s", c.Members[rep].Name, time.Since(t1).Round(time.Millisecond))
	// StopMember returns once its processes are gone, so no answer from
	// its Patroni is possible any more: one Status is enough.
	st, err := e.Status(ctx, c)
	require.NoError(t, err)
	require.False(t, st.Members[rep].Up, "%+v", st.Members[rep])
	st = waitStatus(t, ctx, e, c, "writable with one replica stopped", func(st engines.Status) error {
		if st.Members[rep].Up {
			return fmt.Errorf("stopped member %s reported up: %+v", c.Members[rep].Name, st.Members[rep])
		}
		return writableWithLeader(st)
	})
	insert(t, ctx, connect(t, e, c, leaderOf(st)).Database("chaos").Collection("kv"), bson.M{"_id": "k2"})
	require.NoError(t, e.StartMember(ctx, c, rep))
	waitStatus(t, ctx, e, c, "replica back", func(st engines.Status) error {
		if !st.Members[rep].Healthy {
			return fmt.Errorf("%+v", st.Members[rep])
		}
		return nil
	})
	// Counted through the restarted member's (fresh) FerretDB; a failed
	// count is retried, not taken for a wrong one.
	var n int64
	require.NoError(t, engines.WaitFor(ctx, waitLong, 500*time.Millisecond, "count documents", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		n, err = connect(t, e, c, rep).Database("chaos").Collection("kv").CountDocuments(ctx, bson.M{})
		return err
	}))
	require.EqualValues(t, 2, n)
}

func TestPatroniConfig(t *testing.T) {
	c := &engines.Cluster{Service: "mongodb"}
	for i := range 3 {
		c.Members = append(c.Members, engines.Member{Name: fmt.Sprintf("m%d", i), Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), DataDir: "/d", LogDir: "/l"})
	}
	b, err := patroniConfig(c, 1, "")
	require.NoError(t, err)
	y := string(b)
	// The settings lab-facts measured with no acknowledged write lost.
	require.Contains(t, y, "\netcd:\n")
	require.NotContains(t, y, "etcd3")
	for _, want := range []string{"synchronous_mode: true", "synchronous_mode_strict: true", "synchronous_node_count: 1",
		"ttl: 10", "loop_wait: 2", "retry_timeout: 3", "wal_sender_timeout: 10s", "use_pg_rewind: true", "use_slots: true",
		"198.18.0.1:2379,198.18.0.2:2379,198.18.0.3:2379", "listen: 198.18.0.2:5432", "listen: 198.18.0.2:8008",
		"unix_socket_directories: /d/pgrun", "host all all 198.18.0.0/15 scram-sha-256", "password: chaosloop-mongodb-postgres"} {
		require.Contains(t, y, want)
	}
	require.NotContains(t, patroniYAML(t, b)["restapi"], "authentication", "the labs' REST API has no password")
	require.Equal(t, "postgres://ferretdb:chaosloop-mongodb-ferretdb@198.18.0.1:5432,198.18.0.2:5432,198.18.0.3:5432/ferretdb?target_session_attrs=read-write&connect_timeout=3", FerretDBURL(c, c.Members[0]))
}

// TestDocstorePartition cuts the leader's host off the network while one
// client writes through the isolated member's FerretDB and another through
// a member on the majority side: a new leader takes over, the isolated old
// leader must not acknowledge writes that are later lost, and after healing
// it rejoins.
func TestDocstorePartition(t *testing.T) {
	e, c := newLab(t, true)
	ctx := testCtx(t, 15*time.Minute)
	require.NoError(t, e.Start(ctx, c))
	require.NoError(t, e.Prepare(ctx, c, "chaos", []string{"acked"}))
	old := leaderOf(waitStatus(t, ctx, e, c, "writable with a leader", writableWithLeader))
	other := (old + 1) % len(c.Members)

	isolated := startWriter(ctx, connect(t, e, c, old).Database("chaos").Collection("acked"), 1_000_000)
	t.Cleanup(isolated.stop)
	majority := startWriter(ctx, connect(t, e, c, other).Database("chaos").Collection("acked"), 0)
	t.Cleanup(majority.stop)
	waitCount(t, ctx, "isolated-side writes go through before the partition", 50, isolated.count)
	waitCount(t, ctx, "majority-side writes go through before the partition", 50, majority.count)

	// Cut on the switch side (lab-facts: downing the host's own interface
	// loses its routes).
	sw := strings.TrimSuffix(c.Members[0].NetNS, "-h1") + "-sw"
	port := fmt.Sprintf("p%d", old+1)
	link := func(state string) {
		out, err := exec.Command("ip", "-n", sw, "link", "set", port, state).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	cutAt := time.Now()
	link("down")
	healed := false
	t.Cleanup(func() {
		if !healed {
			link("up")
		}
	})
	t.Logf("partitioned leader %s", c.Members[old].Name)

	newLeader := -1
	require.NoError(t, engines.WaitFor(ctx, waitLong, 300*time.Millisecond, "new leader on the majority side", func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		for i, m := range st.Members {
			if i != old && m.Role == RoleLeader && m.Up {
				newLeader = i
				return nil
			}
		}
		return fmt.Errorf("%+v", st.Members)
	}))
	t.Logf("new leader %s after %s", c.Members[newLeader].Name, time.Since(cutAt).Round(time.Millisecond))
	waitCount(t, ctx, "majority-side writes resume", majority.count()+100, majority.count)
	isoBefore := isolated.count()
	time.Sleep(3 * time.Second)
	// The isolated old leader has no synchronous standby: it must not
	// acknowledge anything once the new leader is in place.
	t.Logf("isolated side acknowledged %d writes in 3 s after the new leader was elected", isolated.count()-isoBefore)

	// The etcd term on the majority side once its leader is in place: the
	// member coming back must not move it (pre-vote).
	term := majorityTerm(t, ctx, c, old)

	link("up")
	healed = true
	t1 := time.Now()
	requireTermKept(t, ctx, c, old, term)
	waitStatus(t, ctx, e, c, "old leader rejoins", func(st engines.Status) error {
		m := st.Members[old]
		if !m.Up || !m.Healthy || (m.Role != RoleReplica && m.Role != RoleSyncStandby) || !st.Writable {
			return fmt.Errorf("%+v", st.Members)
		}
		return nil
	})
	t.Logf("old leader %s rejoined %s after healing", c.Members[old].Name, time.Since(t1).Round(time.Millisecond))
	isolated.stop()
	majority.stop()
	isoAcked, isoUnknown, isoGap := isolated.result()
	majAcked, majUnknown, majGap := majority.result()
	t.Logf("isolated-side client: %d acknowledged, %d unknown, longest gap %s", len(isoAcked), isoUnknown, isoGap.Round(time.Millisecond))
	t.Logf("majority-side client: %d acknowledged, %d unknown, longest gap %s", len(majAcked), majUnknown, majGap.Round(time.Millisecond))
	// requireAllThere waits for a read that completes: on a loaded machine
	// the first may time out.
	requireAllThere(t, ctx, connect(t, e, c, newLeader).Database("chaos").Collection("acked"), append(isoAcked, majAcked...))
}

// etcdTerm is member m's etcd's Raft term, and whether it knows a leader,
// asked inside m's network namespace (so an isolated member answers too).
func etcdTerm(ctx context.Context, c *engines.Cluster, m engines.Member) (int64, bool, error) {
	ep := m.AddrPort(EtcdClientPort).String()
	cli, err := etcdengine.NewClient([]string{ep}, dialer(c, m).DialContext)
	if err != nil {
		return 0, false, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return 0, false, fmt.Errorf("%s: etcd status: %w", m.Name, err)
	}
	// int64: testify prints it in decimal.
	return int64(st.RaftTerm), st.Leader != 0, nil
}

// agreedTerm is the etcd term every member but skip (-1: none) is in, with
// a leader known; an error while they differ or one knows no leader.
func agreedTerm(ctx context.Context, c *engines.Cluster, skip int) (int64, error) {
	var terms []int64
	for i, m := range c.Members {
		if i == skip {
			continue
		}
		tm, led, err := etcdTerm(ctx, c, m)
		if err != nil {
			return 0, err
		}
		if !led {
			return 0, fmt.Errorf("%s: no leader in term %d", m.Name, tm)
		}
		terms = append(terms, tm)
	}
	if slices.Min(terms) != slices.Max(terms) {
		return 0, fmt.Errorf("terms %v", terms)
	}
	return terms[0], nil
}

// majorityTerm is the etcd term every member but the isolated one agrees
// on, with a leader known: the term a heal must leave as it is.
func majorityTerm(t *testing.T, ctx context.Context, c *engines.Cluster, isolated int) int64 {
	t.Helper()
	var term int64
	require.NoError(t, engines.WaitFor(ctx, waitLong, 300*time.Millisecond, "etcd majority agrees on a term with a leader", func(ctx context.Context) (err error) {
		term, err = agreedTerm(ctx, c, isolated)
		return err
	}))
	t.Logf("etcd term %d on the majority side before the heal", term)
	return term
}

// requireTermKept waits until every etcd member, the healed one included,
// knows a leader in the same term, and requires that term to be the one
// before the heal. Without pre-vote the isolated member's campaigns raise
// its term; back on the network its answers depose the leader, and the
// election that follows is what left Patroni without its lock for ~12 s
// (session 25).
func requireTermKept(t *testing.T, ctx context.Context, c *engines.Cluster, healed int, before int64) {
	t.Helper()
	var after int64
	require.NoError(t, engines.WaitFor(ctx, waitLong, 100*time.Millisecond, "every etcd member knows a leader in one term", func(ctx context.Context) (err error) {
		after, err = agreedTerm(ctx, c, -1)
		return err
	}))
	require.Equal(t, before, after, "etcd's term moved from %d to %d when %s came back: its return forced an election (pre-vote off?)",
		before, after, c.Members[healed].Name)
}
