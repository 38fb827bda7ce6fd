package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// testCluster lays out members on 127.0.0.31.. (no namespaces) and makes
// sure every process the test started ends, even when it fails.
func testCluster(t *testing.T, e *Engine, n int) *engines.Cluster {
	c := enginetest.Cluster(t, "kafka", n, 31)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Stop(ctx, c); err != nil {
			t.Logf("stop: %v", err)
		}
		killAll(t, c.StateDir)
		if t.Failed() {
			for _, m := range c.Members {
				for _, f := range []string{"kafka.out", "server.log"} {
					if b, err := os.ReadFile(filepath.Join(m.LogDir, f)); err == nil {
						t.Logf("--- %s %s (tail)\n%s", m.Name, f, tailOf(string(b), 30))
					}
				}
			}
		}
	})
	return c
}

func killAll(t *testing.T, stateDir string) {
	recs, _ := proc.List(stateDir)
	for _, r := range recs {
		if err := r.Kill(); err != nil {
			t.Logf("kill %s: %v", r.Name, err)
		}
		r.Wait(context.Background(), 5*time.Second)
	}
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func rssMB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return -1
}

func reportRSS(t *testing.T, c *engines.Cluster) {
	for _, m := range c.Members {
		if rec, err := proc.Load(c.StateDir, procName(m)); err == nil {
			t.Logf("RSS %s: %d MiB", m.Name, rssMB(rec.PID))
		}
	}
}

// produce writes n records with acks=all and idempotence (franz-go's
// defaults). franz-go never fails an idempotent record that may have been
// written, so it retries for ever while the cluster cannot acknowledge;
// produceUnsafe (no idempotence, few retries) is for expected failures.
func produce(ctx context.Context, t *testing.T, e *Engine, c *engines.Cluster, topic, prefix string, n int, deliveryTimeout time.Duration) ([]string, error) {
	t.Helper()
	return produceWith(ctx, t, e, c, topic, prefix, n, deliveryTimeout)
}

// produceUnsafe is acks=all without idempotence and with 3 retries, so that
// a refused write comes back as the broker's error within the timeout.
func produceUnsafe(ctx context.Context, t *testing.T, e *Engine, c *engines.Cluster, topic, prefix string, n int, deliveryTimeout time.Duration) ([]string, error) {
	t.Helper()
	return produceWith(ctx, t, e, c, topic, prefix, n, deliveryTimeout, kgo.DisableIdempotentWrite(), kgo.RecordRetries(3),
		// Retries wait for fresh metadata; the default 5 s would spend the
		// delivery timeout before the retries run out.
		kgo.MetadataMinAge(500*time.Millisecond))
}

func produceWith(ctx context.Context, t *testing.T, e *Engine, c *engines.Cluster, topic, prefix string, n int, deliveryTimeout time.Duration, opts ...kgo.Opt) ([]string, error) {
	t.Helper()
	type result struct {
		vals []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		v, err := produceRecords(ctx, e, c, topic, prefix, n, deliveryTimeout, opts...)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.vals, r.err
	case <-time.After(deliveryTimeout + time.Minute):
		// Fail with the client's stacks rather than hang past cleanup.
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("produce %s hung:\n%s", prefix, b.String())
		return nil, nil
	}
}

func produceRecords(ctx context.Context, e *Engine, c *engines.Cluster, topic, prefix string, n int, deliveryTimeout time.Duration, opts ...kgo.Opt) ([]string, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.Endpoints(c)...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(deliveryTimeout),
		kgo.ProduceRequestTimeout(5 * time.Second), kgo.DialTimeout(time.Second)}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	var vals []string
	for i := range n {
		v := fmt.Sprintf("%s-%d", prefix, i)
		vals = append(vals, v)
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, err
	}
	return vals, nil
}

// consumeAll reads topic from the start until every wanted value is seen.
func consumeAll(ctx context.Context, t *testing.T, e *Engine, c *engines.Cluster, topic string, want []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Endpoints(c)...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DialTimeout(time.Second))
	require.NoError(t, err)
	defer cl.Close()
	missing := map[string]bool{}
	for _, v := range want {
		missing[v] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for len(missing) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { delete(missing, string(r.Value)) })
	}
	require.Empty(t, missing, "acknowledged records not consumed back")
}

func nodeIn(ids []int32, i int) bool { return slices.Contains(ids, NodeID(i)) }

func TestKRaftThreeBrokers(t *testing.T) {
	enginetest.RequireInstalled(t, nil, "java", "mvn")
	ctx := context.Background()
	log := enginetest.Log(t)
	e := New(log, os.Getenv("CHAOSLOOP_KAFKA_CACHE"))
	t0 := time.Now()
	require.NoError(t, e.Install(ctx, DefaultVersion))
	t.Logf("install (or cache hit) took %s", time.Since(t0))
	v, err := e.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, DefaultVersion, v)

	c := testCluster(t, e, 3)
	const topic = "transfers"
	o := Options{Racks: []string{"r1", "r2", "r3"}, ReplicationFactor: 3, MinInSync: 2, Partitions: 6, Topics: []string{topic}}
	t0 = time.Now()
	require.NoError(t, e.Start(ctx, c, o))
	t.Logf("KRaft cluster up with full ISR in %s", time.Since(t0))
	reportRSS(t, c)
	// Idempotent: a second Start finds everything in place.
	require.NoError(t, e.Start(ctx, c, o))

	parts, err := e.Partitions(ctx, c, o)
	require.NoError(t, err)
	require.Len(t, parts, 6)
	for _, p := range parts {
		require.Len(t, p.ISR, 3, "partition %d", p.Partition)
	}
	st, err := e.Status(ctx, c, o)
	require.NoError(t, err)
	require.True(t, st.Writable)
	leaders := 0
	for _, m := range st.Members {
		require.True(t, m.Up && m.Healthy, "%+v", m)
		if strings.HasPrefix(m.Role, "controller-leader") {
			leaders++
		}
	}
	require.Equal(t, 1, leaders, "exactly one quorum leader: %+v", st.Members)

	acked, err := produce(ctx, t, e, c, topic, "a", 200, 30*time.Second)
	require.NoError(t, err)
	consumeAll(ctx, t, e, c, topic, acked)

	// SIGKILL member 2: its partitions shrink to an ISR of 2, writes go on.
	killed := 2
	rec, err := proc.Load(c.StateDir, procName(c.Members[killed]))
	require.NoError(t, err)
	tKill := time.Now()
	require.NoError(t, rec.Kill())
	require.NoError(t, engines.WaitFor(ctx, time.Minute, 250*time.Millisecond, "ISR without killed broker", func(ctx context.Context) error {
		parts, err := e.Partitions(ctx, c, o)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if nodeIn(p.ISR, killed) || len(p.ISR) != 2 || p.Leader < 0 {
				return fmt.Errorf("partition %d: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	}))
	t.Logf("ISR shrank after SIGKILL in %s", time.Since(tKill))
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	require.False(t, st.Members[killed].Up)
	require.False(t, st.Members[killed].Healthy)
	require.True(t, st.Members[0].Healthy && st.Members[1].Healthy, "%+v", st.Members)
	require.True(t, st.Writable)
	more, err := produce(ctx, t, e, c, topic, "b", 100, 30*time.Second)
	require.NoError(t, err, "acks=all with 2 of 3 in sync must succeed")
	acked = append(acked, more...)

	// A second SIGKILL leaves one replica (and no KRaft quorum, since every
	// member is a controller): acks=all must not be acknowledged.
	second := 1
	rec, err = proc.Load(c.StateDir, procName(c.Members[second]))
	require.NoError(t, err)
	require.NoError(t, rec.Kill())
	require.True(t, rec.Wait(ctx, 5*time.Second))
	pctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	_, err = produceUnsafe(pctx, t, e, c, topic, "c", 10, 15*time.Second)
	cancel()
	require.Error(t, err, "acks=all with one live replica was acknowledged")
	t.Logf("produce with one replica left failed as expected: %v", err)
	tStatus := time.Now()
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	t.Logf("status with 2 of 3 dead took %s: %+v", time.Since(tStatus), st)
	require.False(t, st.Members[second].Up)
	require.False(t, st.Members[killed].Up)
	require.True(t, st.Members[0].Up)
	require.False(t, st.Writable)
	require.False(t, st.Members[0].Healthy, "no KRaft quorum: %+v", st.Members[0])

	// Restart both: ISR full again and nothing acknowledged is lost.
	t0 = time.Now()
	require.NoError(t, e.StartMember(ctx, c, o, second))
	require.NoError(t, e.StartMember(ctx, c, o, killed))
	require.NoError(t, e.WaitFullISR(ctx, c, o, 3*time.Minute))
	t.Logf("restarted two brokers, full ISR again in %s", time.Since(t0))
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	require.True(t, st.Writable)
	for _, m := range st.Members {
		require.True(t, m.Healthy, "%+v", m)
	}
	consumeAll(ctx, t, e, c, topic, acked)
	reportRSS(t, c)

	// A frozen broker (SIGSTOP: gray failure) still accepts TCP connections
	// but never answers: Status must neither hang nor call it up, and the
	// controller fences it out of every ISR.
	frozen := 0
	rec, err = proc.Load(c.StateDir, procName(c.Members[frozen]))
	require.NoError(t, err)
	require.NoError(t, rec.Signal(syscall.SIGSTOP))
	t.Cleanup(func() { _ = rec.Signal(syscall.SIGCONT) })
	tStatus = time.Now()
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	t.Logf("status with a frozen broker took %s", time.Since(tStatus))
	require.False(t, st.Members[frozen].Up)
	require.Contains(t, st.Members[frozen].Detail, "does not answer")
	require.NoError(t, engines.WaitFor(ctx, time.Minute, 250*time.Millisecond, "frozen broker out of ISR", func(ctx context.Context) error {
		parts, err := e.Partitions(ctx, c, o)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if nodeIn(p.ISR, frozen) || p.Leader == NodeID(frozen) {
				return fmt.Errorf("partition %d: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	}))
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	require.True(t, st.Writable, "%+v", st)
	require.NoError(t, rec.Signal(syscall.SIGCONT))
	require.NoError(t, e.WaitFullISR(ctx, c, o, 3*time.Minute))

	require.NoError(t, e.Stop(ctx, c))
	for _, m := range c.Members {
		_, err := proc.Load(c.StateDir, procName(m))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
}

// zkAddr is the ZooKeeper the ZooKeeper-mode test starts.
var zkAddr = netip.MustParseAddr("127.0.0.39")

const debianZooKeeper = "zookeeper=3.8.0-11+deb12u2"

func startZooKeeper(t *testing.T, ctx context.Context, log *slog.Logger) string {
	if err := install.Apt(ctx, log, debianZooKeeper); err != nil {
		enginetest.RequireLab(t, err.Error())
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "zoo.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`tickTime=1000
dataDir=%s
clientPortAddress=%s
clientPort=2181
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
`, filepath.Join(dir, "data"), zkAddr)), 0o644))
	state := filepath.Join(dir, "state")
	rec, err := proc.Start(state, proc.Spec{
		Name: "zk-test.zookeeper", Path: "java",
		Args: []string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			// Debian's zookeeper.jar names its dependencies in its manifest.
			"-cp", "/usr/share/java/zookeeper.jar",
			"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg},
		Log: filepath.Join(dir, "zookeeper.out"),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = rec.Stop(context.Background(), 5*time.Second)
		killAll(t, state)
	})
	hostport := net.JoinHostPort(zkAddr.String(), "2181")
	require.NoError(t, engines.WaitFor(ctx, time.Minute, 250*time.Millisecond, "zookeeper ruok", func(ctx context.Context) error {
		if !rec.Alive() {
			b, _ := os.ReadFile(filepath.Join(dir, "zookeeper.out"))
			t.Fatalf("zookeeper exited:\n%s", tailOf(string(b), 30))
		}
		conn, err := net.DialTimeout("tcp", hostport, time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write([]byte("ruok"))
		buf := make([]byte, 4)
		if _, err := conn.Read(buf); err != nil || string(buf) != "imok" {
			return fmt.Errorf("ruok: %q %v", buf, err)
		}
		return nil
	}))
	return hostport + "/chaosloop-kafka-test"
}

func TestZooKeeperModeThreeBrokers(t *testing.T) {
	enginetest.RequireInstalled(t, nil, "java", "mvn")
	ctx := context.Background()
	log := enginetest.Log(t)
	zk := startZooKeeper(t, ctx, log)
	e := New(log, os.Getenv("CHAOSLOOP_KAFKA_CACHE"))
	t0 := time.Now()
	require.NoError(t, e.Install(ctx, DefaultZooKeeperVersion))
	t.Logf("install %s (or cache hit) took %s", DefaultZooKeeperVersion, time.Since(t0))

	c := testCluster(t, e, 3)
	const topic = "ledger"
	o := Options{ZooKeeper: zk, ReplicationFactor: 3, MinInSync: 2, Partitions: 3, Topics: []string{topic}}
	t0 = time.Now()
	require.NoError(t, e.Start(ctx, c, o))
	t.Logf("ZooKeeper-mode cluster up with full ISR in %s", time.Since(t0))
	reportRSS(t, c)
	v, err := e.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, DefaultZooKeeperVersion, v)

	st, err := e.Status(ctx, c, o)
	require.NoError(t, err)
	require.True(t, st.Writable)
	controllers := 0
	for _, m := range st.Members {
		require.True(t, m.Up && m.Healthy, "%+v", m)
		if strings.HasPrefix(m.Role, "controller") {
			controllers++
		}
	}
	require.Equal(t, 1, controllers, "%+v", st.Members)

	acked, err := produce(ctx, t, e, c, topic, "z", 200, 30*time.Second)
	require.NoError(t, err)
	consumeAll(ctx, t, e, c, topic, acked)

	// With the controller outside the brokers' fate (ZooKeeper elects a new
	// one among survivors), killing two brokers shrinks ISRs to one and
	// acks=all is refused with NOT_ENOUGH_REPLICAS.
	for _, i := range []int{1, 2} {
		rec, err := proc.Load(c.StateDir, procName(c.Members[i]))
		require.NoError(t, err)
		require.NoError(t, rec.Kill())
	}
	require.NoError(t, engines.WaitFor(ctx, time.Minute, 250*time.Millisecond, "ISR of one", func(ctx context.Context) error {
		parts, err := e.Partitions(ctx, c, o)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if len(p.ISR) != 1 || p.Leader != NodeID(0) {
				return fmt.Errorf("partition %d: leader %d ISR %v", p.Partition, p.Leader, p.ISR)
			}
		}
		return nil
	}))
	st, err = e.Status(ctx, c, o)
	require.NoError(t, err)
	require.False(t, st.Writable)
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = produceUnsafe(pctx, t, e, c, topic, "y", 10, 40*time.Second)
	cancel()
	require.Error(t, err)
	require.Contains(t, err.Error(), "NOT_ENOUGH_REPLICAS")
	t.Logf("produce with one in-sync replica: %v", err)

	require.NoError(t, e.StartMember(ctx, c, o, 1))
	require.NoError(t, e.StartMember(ctx, c, o, 2))
	require.NoError(t, e.WaitFullISR(ctx, c, o, 3*time.Minute))
	consumeAll(ctx, t, e, c, topic, acked)
}
