package kafka

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// prepare writes member i's configuration on its node and, for KRaft,
// formats its storage once. It returns the path of server.properties.
func (e *Engine) prepare(ctx context.Context, c *engines.Cluster, o Options, i int) (string, []string, error) {
	m := c.Members[i]
	fs := c.FS()
	confDir := filepath.Join(m.DataDir, "conf")
	for _, d := range []string{confDir, dataDir(m), m.LogDir} {
		if err := fs.MkdirAll(ctx, m, d, 0o755); err != nil {
			return "", nil, err
		}
	}
	props := filepath.Join(confDir, "server.properties")
	if err := fs.WriteFile(ctx, m, props, []byte(serverProperties(c, o, i)), 0o644); err != nil {
		return "", nil, err
	}
	logName, logText, logProp := loggingConfig(o, m.LogDir)
	logConf := filepath.Join(confDir, logName)
	if err := fs.WriteFile(ctx, m, logConf, []byte(logText), 0o644); err != nil {
		return "", nil, err
	}
	jvm := append(e.jvmArgs(o.Version, o.HeapMB), logProp+logConf, "-Dkafka.logs.dir="+m.LogDir)
	if o.ZooKeeper != "" {
		return props, jvm, nil
	}
	if formatted, err := fs.Exists(ctx, m, filepath.Join(dataDir(m), "meta.properties")); err != nil || formatted {
		return props, jvm, err
	}
	// The storage tool only writes files, so it runs outside the member's
	// namespace (on its node); it is short-lived and bound to ctx.
	args := append(e.jvmArgs(o.Version, 128), logProp+logConf, "kafka.tools.StorageTool",
		"format", "-t", clusterID(c), "-c", props, "--ignore-formatted")
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := c.RunOnce(fctx, m, proc.Spec{Name: procName(m) + "-format", Path: "java", Args: args, Dir: m.DataDir})
	if err != nil {
		return "", nil, fmt.Errorf("kafka %s: format storage: %v\n%s", m.Name, err, out)
	}
	return props, jvm, nil
}

// launch starts member i's broker unless it already runs.
func (e *Engine) launch(ctx context.Context, c *engines.Cluster, o Options, i int) error {
	m := c.Members[i]
	if c.Launch().Alive(ctx, procName(m)) {
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
	where, err := c.Launch().Start(ctx, m, spec)
	if err != nil {
		return err
	}
	e.log.Info("kafka: started broker", "member", m.Name, "process", where, "addr", endpoint(m), "version", o.Version)
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
	if err := e.install(ctx, o); err != nil {
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
	err = waitRunning(ctx, 3*time.Minute, "kafka brokers registered", func() error { return e.checkAlive(ctx, c) }, func(ctx context.Context) error {
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
func (e *Engine) checkAlive(ctx context.Context, c *engines.Cluster) error {
	for _, m := range c.Members {
		if err := memberAlive(ctx, c, m); err != nil {
			return err
		}
	}
	return nil
}

func memberAlive(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	if !c.Launch().Alive(ctx, procName(m)) {
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
	if err := e.install(ctx, o); err != nil {
		return err
	}
	if err := e.launch(ctx, c, o, i); err != nil {
		return err
	}
	m := c.Members[i]
	if o.ZooKeeper == "" && !votersRunning(ctx, c) {
		// It cannot answer before a majority of the KRaft voters runs: it
		// waits for them (see initial.broker.registration.timeout.ms).
		e.log.Info("kafka: broker started, waiting for its controller quorum", "member", m.Name)
		return nil
	}
	alive := func() error { return memberAlive(ctx, c, m) }
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
	if err := e.install(ctx, o); err != nil {
		return err
	}
	return e.launch(ctx, c, o, i)
}

// votersRunning reports whether a strict majority of the KRaft voters'
// processes runs.
func votersRunning(ctx context.Context, c *engines.Cluster) bool {
	voters, running := 0, 0
	for j, m := range c.Members {
		if !isController(c, j) {
			continue
		}
		voters++
		if memberAlive(ctx, c, m) == nil {
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
	return c.Launch().Stop(ctx, procName(m), grace)
}

// Stop stops every member at once. The grace is short: with the quorum
// going away together, a controlled shutdown cannot complete anyway.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	return engines.StopAll(c, func(i int) error { return stopMember(ctx, c, c.Members[i], 5*time.Second) })
}
