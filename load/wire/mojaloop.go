package wire

import "time"

// Mojaloop's own client settings. The handlers stand in for central-ledger
// and the load client for ml-api-adapter, so their Kafka and database
// settings are those services' defaults, not values tuned to make the lab
// look good: a stall that remains with them is Mojaloop's behaviour and is
// reported, not hidden. Neither service sets its Kafka timeouts in
// config/default.json (mojaloop/central-ledger ddc7fe3,
// mojaloop/ml-api-adapter b25fb41: rdkafkaConf has only client.id,
// group.id, metadata.broker.list, socket.keepalive.enable,
// queue.buffering.max.messages, enable.auto.commit for the position
// handlers, event_cb/dr_cb; topicConf request.required.acks and
// partitioner), so node-rdkafka runs with librdkafka's defaults
// (confluentinc/librdkafka CONFIGURATION.md). The README lists them.
const (
	// SessionTimeout: librdkafka session.timeout.ms (45000). A consumer
	// that stops heartbeating keeps its partitions this long.
	SessionTimeout = 45 * time.Second
	// HeartbeatInterval: librdkafka heartbeat.interval.ms (3000).
	HeartbeatInterval = 3 * time.Second
	// RebalanceTimeout: librdkafka max.poll.interval.ms (300000), which
	// librdkafka sends as the JoinGroup rebalance timeout.
	RebalanceTimeout = 300 * time.Second
	// ProduceRequestTimeout: librdkafka request.timeout.ms (30000), the
	// acks wait the broker is given.
	ProduceRequestTimeout = 30 * time.Second
	// SocketTimeout: librdkafka socket.timeout.ms (60000), the client-side
	// bound of a request; franz-go expresses it as the request's own
	// timeout plus RequestTimeoutOverhead, so the overhead is
	// SocketTimeout - ProduceRequestTimeout (a produce request is given
	// 60 s in all, as librdkafka gives it).
	SocketTimeout = 60 * time.Second
	// DeliveryTimeout: librdkafka message.timeout.ms (300000).
	DeliveryTimeout = 300 * time.Second
	// ConnSetupTimeout: librdkafka socket.connection.setup.timeout.ms
	// (30000).
	ConnSetupTimeout = 30 * time.Second
	// DialTimeout is what the clients here use instead: librdkafka marks a
	// broker down and asks the live brokers for the partitions' new
	// leaders as soon as its connection drops, while its reconnect attempt
	// runs on the side; franz-go learns of the new leaders only when the
	// redial to the old one fails, so a 30 s dial to a dark broker held
	// its records for the whole fault (measured: 303 client produces of
	// TestQuickstartPasses waited out the 30 s rack power-off, all on the
	// partitions the dead broker led). Bounding the dial at the lab's TCP
	// user timeout gives franz-go librdkafka's reaction time.
	DialTimeout = 4 * time.Second
	// ReconnectBackoff and ReconnectBackoffMax: librdkafka
	// reconnect.backoff.ms (100) and reconnect.backoff.max.ms (10000).
	// librdkafka adds -25%..+50% jitter; the lab does not, so that a
	// seeded run is repeatable.
	ReconnectBackoff    = 100 * time.Millisecond
	ReconnectBackoffMax = 10 * time.Second
	// Linger: librdkafka queue.buffering.max.ms (5).
	Linger = 5 * time.Millisecond
	// FetchMaxWait: librdkafka fetch.wait.max.ms (500).
	FetchMaxWait = 500 * time.Millisecond
	// MetadataRefresh: librdkafka topic.metadata.refresh.interval.ms
	// (300000); MetadataFastRefresh: topic.metadata.refresh.fast.interval.ms
	// (100, the soonest a refresh is repeated after a lost leader).
	MetadataRefresh     = 300 * time.Second
	MetadataFastRefresh = 100 * time.Millisecond
	// Idempotent: librdkafka enable.idempotence (false); neither service
	// sets it. MaxInFlight: max.in.flight.requests.per.connection
	// (1000000).
	Idempotent  = false
	MaxInFlight = 1000000
	// ClientMaxInFlight is the load client's in-flight limit instead: it
	// writes with acks=all where ml-api-adapter's prepare producer uses
	// acks=1 (see ProducerOpts), and a broker reads a connection's next
	// request only once it has answered the one before — for acks=all,
	// after the followers fetched it. A pipeline of 5 ms requests then caps
	// a connection at one request per replication round trip, and a broker
	// slower than that (the group coordinator on a busy 2-core lab)
	// queued the prepares of its partitions without bound (measured:
	// baseline p50 20 s and p99 29.7 s for the payers on that broker's
	// partitions, 1.6 s on the others). With one request in flight,
	// records wait in the client and go out together in the next request,
	// as acks=1 would never have made them wait.
	ClientMaxInFlight = 1

	// Central-ledger's database pool (config/default.json DATABASE, knex
	// over mysql2): POOL_MIN_SIZE = POOL_MAX_SIZE = 10,
	// IDLE_TIMEOUT_MILLIS 30000, ACQUIRE_TIMEOUT_MILLIS 30000 (a
	// transaction waits at most this long for a connection).
	DBPoolSize       = 10
	DBIdleTimeout    = 30 * time.Second
	DBAcquireTimeout = 30 * time.Second
)
