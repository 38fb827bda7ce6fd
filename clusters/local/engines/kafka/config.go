package kafka

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

func isController(c *engines.Cluster, i int) bool {
	return len(c.Members) <= combinedMax || i < controllerCount
}

// clusterID derives a stable KRaft cluster id from the cluster's identity,
// so a member whose data was wiped re-formats into the same cluster.
// The top bit is cleared so the id never begins with '-' (nor '_'): the
// storage tool's argument parser reads "-t -Xy..." as a missing value and an
// option, so 1 state directory in 64 could not be formatted.
func clusterID(c *engines.Cluster) string {
	h := sha256.Sum256([]byte(c.Service + "\x00" + c.StateDir))
	h[0] &= 0x7f
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

func dataDir(m engines.Member) string { return filepath.Join(m.DataDir, "kafka-logs") }

// serverProperties renders member i's server.properties. The fast timeouts
// are there so that a killed, frozen or cut-off broker leaves the ISR and
// loses leadership within seconds instead of Kafka's production defaults of
// 9-30 s.
func serverProperties(c *engines.Cluster, o Options, i int) string {
	m := c.Members[i]
	client := m.AddrPort(ClientPort).String()
	// Where the client listener binds: all addresses when the member
	// takes connections on loopback too (a cluster's port-forward lands
	// there); Kafka has one socket per listener.
	bind := client
	if m.ListenLoopback {
		bind = net.JoinHostPort("0.0.0.0", strconv.Itoa(int(m.Port(ClientPort))))
	}
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
				voters = append(voters, fmt.Sprintf("%d@%s", NodeID(j), mj.AddrPort(ControllerPort)))
			}
		}
		set("process.roles", roles)
		set("node.id", strconv.Itoa(int(NodeID(i))))
		// A static quorum: the voters are fixed by the lab layout.
		set("controller.quorum.voters", strings.Join(voters, ","))
		set("controller.listener.names", "CONTROLLER")
		listeners := "PLAINTEXT://" + bind
		if isController(c, i) {
			listeners += ",CONTROLLER://" + m.AddrPort(ControllerPort).String()
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
		set("listeners", "PLAINTEXT://"+bind)
	}
	set("advertised.listeners", "PLAINTEXT://"+client)
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
