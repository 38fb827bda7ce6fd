// Package kafka runs real Apache Kafka brokers as lab engines, built from
// the Maven Central jars (see Install): KRaft with 4.x by default, or
// ZooKeeper mode with 3.9.x when Options.ZooKeeper is set.
//
// Member i is node/broker id i+1 and listens on Member.Addr:9092 (clients
// and replication) and, when it is a controller, Member.Addr:9093.
package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

const (
	// ClientPort serves clients and inter-broker replication.
	ClientPort = 9092
	// ControllerPort serves the KRaft controller quorum.
	ControllerPort = 9093
	// combinedMax is the largest cluster where every member is also a
	// KRaft controller; above it the first controllerCount are.
	combinedMax     = 5
	controllerCount = 3
)

// Engine runs Kafka clusters from jars cached under one directory.
type Engine struct {
	log      *slog.Logger
	cacheDir string

	mu      sync.Mutex
	version string // last installed or started
}

// Options describe one Kafka cluster. Zero values take defaults (see
// withDefaults).
type Options struct {
	// Version of kafka_2.13; "" = DefaultVersion, or DefaultZooKeeperVersion
	// in ZooKeeper mode.
	Version string
	// ZooKeeper is a connect string (with a chroot, if the ensemble is
	// shared); "" runs KRaft.
	ZooKeeper string
	// Racks gives broker.rack per member ("" or missing = none).
	Racks []string
	// ReplicationFactor (default min(3, members)), MinInSync (default
	// min(2, RF)) and Partitions (default 3) apply to Topics and to the
	// broker defaults.
	ReplicationFactor, MinInSync, Partitions int
	// Topics are created by Start.
	Topics []string
	// Assignment, when set, gives each partition's replicas as member
	// indexes (the scenario spec's assignment, so that the lab matches what
	// analyze predicts); otherwise Kafka assigns them (rack-aware).
	Assignment [][]int
	// HeapMB caps each broker's heap (default 256): the whole lab shares a
	// 2-core machine.
	HeapMB int
}

func (o Options) withDefaults(members int) Options {
	if o.Version == "" {
		o.Version = DefaultVersion
		if o.ZooKeeper != "" {
			o.Version = DefaultZooKeeperVersion
		}
	}
	if o.ReplicationFactor <= 0 {
		o.ReplicationFactor = min(3, members)
	}
	if o.MinInSync <= 0 {
		o.MinInSync = min(2, o.ReplicationFactor)
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.HeapMB <= 0 {
		o.HeapMB = 256
	}
	return o
}

// New returns an engine whose jars live under cacheDir ("" = DefaultCacheDir()).
func New(log *slog.Logger, cacheDir string) *Engine {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	return &Engine{log: log, cacheDir: cacheDir}
}

func (e *Engine) setVersion(v string) {
	e.mu.Lock()
	e.version = v
	e.mu.Unlock()
}

// Version is the Kafka version this engine last installed or started
// (checked to be present in the cache).
func (e *Engine) Version(ctx context.Context) (string, error) {
	e.mu.Lock()
	v := e.version
	e.mu.Unlock()
	if v == "" {
		return "", errors.New("kafka: no version installed yet")
	}
	if !e.installed(v) {
		return "", fmt.Errorf("kafka %s: not installed in %s", v, e.cacheDir)
	}
	return v, nil
}

// NodeID is member i's broker.id / node.id.
func NodeID(i int) int32 { return int32(i + 1) }

func procName(m engines.Member) string { return m.Name + ".kafka" }

func endpoint(m engines.Member) string {
	return net.JoinHostPort(m.Addr.String(), strconv.Itoa(ClientPort))
}

// Endpoints are the bootstrap addresses of every member.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = endpoint(m)
	}
	return out
}

func isController(c *engines.Cluster, i int) bool {
	return len(c.Members) <= combinedMax || i < controllerCount
}

// clusterID derives a stable KRaft cluster id from the cluster's identity,
// so a member whose data was wiped re-formats into the same cluster.
func clusterID(c *engines.Cluster) string {
	h := sha256.Sum256([]byte(c.Service + "\x00" + c.StateDir))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

func dataDir(m engines.Member) string { return filepath.Join(m.DataDir, "kafka-logs") }

// serverProperties renders member i's server.properties. The fast timeouts
// are there so that a killed, frozen or cut-off broker leaves the ISR and
// loses leadership within seconds instead of Kafka's production defaults of
// 9-30 s.
func serverProperties(c *engines.Cluster, o Options, i int) string {
	m := c.Members[i]
	addr := m.Addr.String()
	p := [][2]string{}
	set := func(k, v string) { p = append(p, [2]string{k, v}) }
	if o.ZooKeeper == "" {
		roles := "broker"
		if isController(c, i) {
			roles = "broker,controller"
		}
		var voters []string
		for j, mj := range c.Members {
			if isController(c, j) {
				voters = append(voters, fmt.Sprintf("%d@%s", NodeID(j), net.JoinHostPort(mj.Addr.String(), strconv.Itoa(ControllerPort))))
			}
		}
		set("process.roles", roles)
		set("node.id", strconv.Itoa(int(NodeID(i))))
		// A static quorum: the voters are fixed by the lab layout.
		set("controller.quorum.voters", strings.Join(voters, ","))
		set("controller.listener.names", "CONTROLLER")
		listeners := "PLAINTEXT://" + net.JoinHostPort(addr, strconv.Itoa(ClientPort))
		if isController(c, i) {
			listeners += ",CONTROLLER://" + net.JoinHostPort(addr, strconv.Itoa(ControllerPort))
		}
		set("listeners", listeners)
		set("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
		// The controller fences a broker that has not heartbeated for 4 s
		// (default 9 s); fencing drops it from every ISR at once.
		set("broker.heartbeat.interval.ms", ms(BrokerHeartbeat))
		set("broker.session.timeout.ms", ms(BrokerSession))
		set("controller.quorum.fetch.timeout.ms", ms(QuorumFetchTimeout))
		set("controller.quorum.election.timeout.ms", ms(QuorumElectionTimeout))
		// A broker restarted while its controller quorum is still lost
		// (the other voters' nodes are dark) waits for it, as a broker
		// under a supervisor that restarts it would; Kafka's default gives
		// up after 60 s and exits, and nothing here would start it again.
		set("initial.broker.registration.timeout.ms", ms(30*time.Minute))
	} else {
		set("broker.id", strconv.Itoa(int(NodeID(i))))
		set("zookeeper.connect", o.ZooKeeper)
		// The ZK controller sees a broker gone when its session expires:
		// 6 s instead of 18 s.
		set("zookeeper.session.timeout.ms", ms(ZKSession))
		set("zookeeper.connection.timeout.ms", "10000")
		set("listeners", "PLAINTEXT://"+net.JoinHostPort(addr, strconv.Itoa(ClientPort)))
	}
	set("advertised.listeners", "PLAINTEXT://"+net.JoinHostPort(addr, strconv.Itoa(ClientPort)))
	set("inter.broker.listener.name", "PLAINTEXT")
	set("log.dirs", dataDir(m))
	if i < len(o.Racks) && o.Racks[i] != "" {
		set("broker.rack", o.Racks[i])
	}
	// Durability settings under test: never elect an out-of-sync replica,
	// and acks=all needs MinInSync replicas.
	set("unclean.leader.election.enable", "false")
	set("default.replication.factor", strconv.Itoa(o.ReplicationFactor))
	set("min.insync.replicas", strconv.Itoa(o.MinInSync))
	set("num.partitions", strconv.Itoa(o.Partitions))
	set("auto.create.topics.enable", "false")
	// Internal topics: replicated like the data, but 3 partitions instead
	// of 50 (each partition costs files and fetcher work on 2 cores).
	set("offsets.topic.replication.factor", strconv.Itoa(o.ReplicationFactor))
	set("offsets.topic.num.partitions", "3")
	set("transaction.state.log.replication.factor", strconv.Itoa(o.ReplicationFactor))
	set("transaction.state.log.min.isr", strconv.Itoa(o.MinInSync))
	set("transaction.state.log.num.partitions", "3")
	set("group.initial.rebalance.delay.ms", "0")
	// A follower that has not caught up for 5 s leaves the ISR (default 30 s).
	set("replica.lag.time.max.ms", "5000")
	set("replica.socket.timeout.ms", "5000")
	// Small segments and indexes: many brokers, little disk, and segment
	// rolls happen during short runs. 1 MiB is the smallest 4.x accepts.
	set("log.segment.bytes", "1048576")
	set("log.index.size.max.bytes", "262144")
	set("log.retention.check.interval.ms", "60000")
	// Few threads: three or more brokers share 2 cores with the rest of the lab.
	set("num.network.threads", "2")
	set("num.io.threads", "2")
	set("background.threads", "2")
	set("num.replica.fetchers", "1")
	set("num.recovery.threads.per.data.dir", "1")
	set("log.cleaner.threads", "1")
	set("log.cleaner.dedupe.buffer.size", "8388608")
	var b strings.Builder
	b.WriteString("# written by chaosloop\n")
	for _, kv := range p {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return b.String()
}

func loggingConfig(o Options, logDir string) (name, text, sysprop string) {
	file := filepath.Join(logDir, "server.log")
	if isKRaftOnly(o.Version) {
		name = "log4j2.properties"
		text = fmt.Sprintf(`status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.org.name = org.apache.kafka
logger.org.level = INFO
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
`, file)
		return name, text, "-Dlog4j2.configurationFile="
	}
	name = "log4j.properties"
	text = fmt.Sprintf(`log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=%s
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%%d] %%p %%m (%%c)%%n
log4j.logger.org.apache.zookeeper=WARN
`, file)
	return name, text, "-Dlog4j.configuration=file:"
}

// jvmArgs are the flags of every Kafka JVM: a fixed small heap, serial GC
// and C1 only, which keep RSS and CPU low on a shared 2-core machine, and
// exiting on OOM rather than limping on.
func (e *Engine) jvmArgs(version string, heapMB int) []string {
	return []string{
		fmt.Sprintf("-Xms%dm", heapMB), fmt.Sprintf("-Xmx%dm", heapMB),
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
		"-cp", filepath.Join(e.libDir(version), "*"),
	}
}

// prepare writes member i's configuration and, for KRaft, formats its
// storage once. It returns the path of server.properties.
func (e *Engine) prepare(ctx context.Context, c *engines.Cluster, o Options, i int) (string, []string, error) {
	m := c.Members[i]
	confDir := filepath.Join(m.DataDir, "conf")
	for _, d := range []string{confDir, dataDir(m), m.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	props := filepath.Join(confDir, "server.properties")
	if err := os.WriteFile(props, []byte(serverProperties(c, o, i)), 0o644); err != nil {
		return "", nil, err
	}
	logName, logText, logProp := loggingConfig(o, m.LogDir)
	logConf := filepath.Join(confDir, logName)
	if err := os.WriteFile(logConf, []byte(logText), 0o644); err != nil {
		return "", nil, err
	}
	jvm := append(e.jvmArgs(o.Version, o.HeapMB), logProp+logConf, "-Dkafka.logs.dir="+m.LogDir)
	if o.ZooKeeper != "" {
		return props, jvm, nil
	}
	if _, err := os.Stat(filepath.Join(dataDir(m), "meta.properties")); err == nil {
		return props, jvm, nil
	}
	// The storage tool only writes files, so it runs here rather than in
	// the member's namespace; it is short-lived and bound to ctx.
	args := append(e.jvmArgs(o.Version, 128), logProp+logConf, "kafka.tools.StorageTool",
		"format", "-t", clusterID(c), "-c", props, "--ignore-formatted")
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(fctx, "java", args...).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("kafka %s: format storage: %v\n%s", m.Name, err, out)
	}
	return props, jvm, nil
}

// launch starts member i's broker unless it already runs.
func (e *Engine) launch(ctx context.Context, c *engines.Cluster, o Options, i int) error {
	m := c.Members[i]
	if rec, err := proc.Load(c.StateDir, procName(m)); err == nil && rec.Alive() {
		return nil
	}
	props, jvm, err := e.prepare(ctx, c, o, i)
	if err != nil {
		return err
	}
	spec := proc.Spec{
		Name:   procName(m),
		NetNS:  m.NetNS,
		Cgroup: m.Cgroup,
		Path:   "java",
		Args:   append(jvm, "kafka.Kafka", props),
		Dir:    m.DataDir,
		Log:    filepath.Join(m.LogDir, "kafka.out"),
	}
	rec, err := proc.Start(c.StateDir, spec)
	if err != nil {
		return err
	}
	e.log.Info("kafka: started broker", "member", m.Name, "pid", rec.PID, "addr", endpoint(m), "version", o.Version)
	return nil
}

// Start installs the version if needed, starts every member, creates the
// topics and returns once every partition has its full ISR. Members and
// topics that already exist are left as they are.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster, o Options) error {
	if len(c.Members) == 0 {
		return errors.New("kafka: cluster has no members")
	}
	o = o.withDefaults(len(c.Members))
	if err := e.Install(ctx, o.Version); err != nil {
		return err
	}
	begin := time.Now()
	errs := make([]error, len(c.Members))
	var wg sync.WaitGroup
	for i := range c.Members {
		wg.Go(func() { errs[i] = e.launch(ctx, c, o, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cl, err := e.client(c, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Ask every member itself: each must answer and list all brokers as
	// registered (unfenced) before topics are created.
	err = waitRunning(ctx, 3*time.Minute, "kafka brokers registered", func() error { return e.checkAlive(c) }, func(ctx context.Context) error {
		for i, p := range e.probeAll(ctx, c, []string{}, false) {
			if p.err != nil {
				return fmt.Errorf("%s: %w", c.Members[i].Name, p.err)
			}
			if len(p.md.Brokers) < len(c.Members) {
				return fmt.Errorf("%s lists %d of %d brokers", c.Members[i].Name, len(p.md.Brokers), len(c.Members))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.log.Info("kafka: brokers registered", "members", len(c.Members), "took", time.Since(begin).Round(time.Millisecond))
	if len(o.Topics) > 0 {
		minISR := strconv.Itoa(o.MinInSync)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		if len(o.Assignment) > 0 {
			err = createAssigned(rctx, cl, o, minISR)
		} else {
			var res kadm.CreateTopicResponses
			res, err = adm.CreateTopics(rctx, int32(o.Partitions), int16(o.ReplicationFactor),
				map[string]*string{"min.insync.replicas": &minISR}, o.Topics...)
			for _, r := range res.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) && err == nil {
					err = fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
				}
			}
		}
		cancel()
		if err != nil {
			return fmt.Errorf("kafka: create topics: %w", err)
		}
	}
	if err := e.WaitFullISR(ctx, c, o, 3*time.Minute); err != nil {
		return err
	}
	e.setVersion(o.Version)
	e.log.Info("kafka: cluster ready", "members", len(c.Members), "topics", o.Topics, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// checkAlive fails when a broker process is not running.
func (e *Engine) checkAlive(c *engines.Cluster) error {
	for _, m := range c.Members {
		if err := memberAlive(c, m); err != nil {
			return err
		}
	}
	return nil
}

func memberAlive(c *engines.Cluster, m engines.Member) error {
	rec, err := proc.Load(c.StateDir, procName(m))
	if err != nil {
		return fmt.Errorf("kafka %s: %w", m.Name, err)
	}
	if !rec.Alive() {
		return fmt.Errorf("kafka %s exited; see %s", m.Name, filepath.Join(m.LogDir, "kafka.out"))
	}
	return nil
}

// WaitFullISR waits until every partition of o.Topics has a leader and all
// its replicas in sync.
func (e *Engine) WaitFullISR(ctx context.Context, c *engines.Cluster, o Options, timeout time.Duration) error {
	o = o.withDefaults(len(c.Members))
	if len(o.Topics) == 0 {
		return nil
	}
	return engines.WaitFor(ctx, timeout, 500*time.Millisecond, "kafka full ISR", func(ctx context.Context) error {
		parts, err := e.Partitions(ctx, c, o)
		if err != nil {
			return err
		}
		if err := checkTopicsPresent(parts, o); err != nil {
			return err
		}
		for _, p := range parts {
			if p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
				return fmt.Errorf("%s/%d: leader %d, ISR %v of replicas %v", p.Topic, p.Partition, p.Leader, p.ISR, p.Replicas)
			}
		}
		return nil
	})
}

func checkTopicsPresent(parts []Partition, o Options) error {
	n := map[string]int{}
	for _, p := range parts {
		n[p.Topic]++
	}
	var missing []string
	for _, t := range o.Topics {
		if n[t] == 0 {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("topics not found: %s", strings.Join(missing, ", "))
	}
	return nil
}

// StartMember (re)starts member i and waits until it answers on its client
// port. The rest of the cluster is expected to be running.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, o Options, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("kafka: no member %d", i)
	}
	o = o.withDefaults(len(c.Members))
	if err := e.Install(ctx, o.Version); err != nil {
		return err
	}
	if err := e.launch(ctx, c, o, i); err != nil {
		return err
	}
	m := c.Members[i]
	if o.ZooKeeper == "" && !votersRunning(c) {
		// It cannot answer before a majority of the KRaft voters runs: it
		// waits for them (see initial.broker.registration.timeout.ms).
		e.log.Info("kafka: broker started, waiting for its controller quorum", "member", m.Name)
		return nil
	}
	alive := func() error { return memberAlive(c, m) }
	return waitRunning(ctx, 2*time.Minute, "kafka "+m.Name+" answering", alive, func(ctx context.Context) error {
		_, err := e.memberMetadata(ctx, c, m, nil)
		return err
	})
}

// Launch starts member i's broker unless it runs, without waiting for it:
// members coming back together (a rack powered on) must all be running
// before any of them can form the controller quorum it waits for.
func (e *Engine) Launch(ctx context.Context, c *engines.Cluster, o Options, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("kafka: no member %d", i)
	}
	o = o.withDefaults(len(c.Members))
	if err := e.Install(ctx, o.Version); err != nil {
		return err
	}
	return e.launch(ctx, c, o, i)
}

// votersRunning reports whether a strict majority of the KRaft voters'
// processes runs.
func votersRunning(c *engines.Cluster) bool {
	voters, running := 0, 0
	for j, m := range c.Members {
		if !isController(c, j) {
			continue
		}
		voters++
		if memberAlive(c, m) == nil {
			running++
		}
	}
	return 2*running > voters
}

// waitRunning is engines.WaitFor that gives up at once when alive fails: a
// broker that exited (bad config, port taken) is not a slow start.
func waitRunning(ctx context.Context, timeout time.Duration, what string, alive func() error, cond func(context.Context) error) error {
	var dead error
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := engines.WaitFor(dctx, timeout, 500*time.Millisecond, what, func(ctx context.Context) error {
		if dead = alive(); dead != nil {
			cancel()
			return dead
		}
		return cond(ctx)
	})
	if dead != nil {
		return dead
	}
	return err
}

// StopMember stops member i: SIGTERM (a controlled shutdown that moves its
// leaderships away first), then SIGKILL after 20 s.
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, o Options, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return stopMember(ctx, c, m, 20*time.Second)
}

func stopMember(ctx context.Context, c *engines.Cluster, m engines.Member, grace time.Duration) error {
	return proc.StopRecorded(ctx, c.StateDir, procName(m), grace)
}

// Stop stops every member at once. The grace is short: with the quorum
// going away together, a controlled shutdown cannot complete anyway.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopAll(c, func(i int) error { return stopMember(ctx, c, c.Members[i], 5*time.Second) })
}

// client is a franz-go client over the given members (nil = all) with short
// timeouts, so a frozen or cut-off broker delays callers by seconds at most.
func (e *Engine) client(c *engines.Cluster, members []engines.Member, extra ...kgo.Opt) (*kgo.Client, error) {
	if members == nil {
		members = c.Members
	}
	seeds := make([]string, len(members))
	for i, m := range members {
		seeds[i] = endpoint(m)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(time.Second),
		kgo.RequestTimeoutOverhead(2 * time.Second),
		kgo.RetryTimeout(3 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
		// The lab reaches brokers from inside their host namespaces.
		kgo.Dialer(c.Dialer()),
	}, extra...)
	return kgo.NewClient(opts...)
}

// createAssigned creates the topics with an explicit replica assignment.
func createAssigned(ctx context.Context, cl *kgo.Client, o Options, minISR string) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 20000
	for _, name := range o.Topics {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = name
		t.NumPartitions, t.ReplicationFactor = -1, -1
		for p, members := range o.Assignment {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition = int32(p)
			for _, m := range members {
				a.Replicas = append(a.Replicas, NodeID(m))
			}
			t.ReplicaAssignment = append(t.ReplicaAssignment, a)
		}
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = "min.insync.replicas", &minISR
		t.Configs = append(t.Configs, c)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// Failure detection timing. KRaft: a broker silent for BrokerSession is
// fenced; a controller voter that hears nothing from the active
// controller for QuorumFetchTimeout starts an election, which takes up to
// QuorumElectionTimeout (both Kafka's defaults, made explicit). ZooKeeper
// mode: a broker is gone when its ZKSession expires.
const (
	BrokerHeartbeat       = time.Second
	BrokerSession         = 4 * time.Second
	QuorumFetchTimeout    = 2 * time.Second
	QuorumElectionTimeout = time.Second
	ZKSession             = 6 * time.Second
)

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// FailoverBudget: KRaft, a broker fenced and the active controller
// replaced (worst case both); with ZooKeeper, the session expiring and
// the controller moving leadership; plus margin.
func FailoverBudget(zooKeeper bool) engines.Budget {
	if zooKeeper {
		return engines.WithMargin(ZKSession, fmt.Sprintf("zookeeper.session.timeout %s", ZKSession))
	}
	raw := BrokerSession + QuorumFetchTimeout + QuorumElectionTimeout
	return engines.WithMargin(raw, fmt.Sprintf("KRaft broker.session.timeout %s + controller.quorum.fetch.timeout %s + election.timeout %s = %s",
		BrokerSession, QuorumFetchTimeout, QuorumElectionTimeout, raw))
}
