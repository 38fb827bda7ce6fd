package docstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

// Roles reported in MemberStatus.Role (Patroni's own names).
const (
	RoleLeader      = "leader"
	RoleSyncStandby = "sync_standby"
	RoleReplica     = "replica"
)

// Deadlines are sized for a CPU-starved machine (a 2-core CI runner with
// other labs running), not an idle one: they bound a wait for a condition,
// they are not expectations.
const (
	startTimeout = 3 * time.Minute
	// memberTimeout bounds waiting for one member's processes to answer.
	memberTimeout = 3 * time.Minute
	// probeTimeout bounds one Patroni REST call or FerretDB ping; Patroni
	// is Python and answers late when CPU-starved.
	probeTimeout = 3 * time.Second
)

func procName(m engines.Member, what string) string { return m.Name + "." + what }

// Endpoints are mongodb:// URIs of the members' FerretDBs. FerretDB is not a
// replica set, so each URI connects directly to one instance.
func (e *Engine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = fmt.Sprintf("mongodb://%s/?directConnection=true", hostPort(m.Addr, FerretDBPort))
	}
	return out
}

// Start starts every member and returns once Patroni has a leader, a
// synchronous standby and every member running, and every FerretDB answers
// ping. Processes already running are left alone.
func (e *Engine) Start(ctx context.Context, c *engines.Cluster) error {
	if len(c.Members) == 0 {
		return errors.New("docstore: no members")
	}
	seen := map[netip.Addr]string{}
	for _, m := range c.Members {
		// Every member uses the same ports on its own address.
		if o, dup := seen[m.Addr]; dup {
			return fmt.Errorf("docstore: members %s and %s share address %s", o, m.Name, m.Addr)
		}
		seen[m.Addr] = m.Name
	}
	t0 := time.Now()
	for i := range c.Members {
		if err := prepareMember(c, i); err != nil {
			return err
		}
	}
	// etcd members wait for one another, so all start before any check.
	for i := range c.Members {
		if err := e.startEtcd(ctx, c, i); err != nil {
			return err
		}
	}
	for i := range c.Members {
		if err := e.startPatroni(ctx, c, i); err != nil {
			return err
		}
	}
	if err := e.waitLeaderAndSync(ctx, c); err != nil {
		return err
	}
	tPG := time.Now()
	for i := range c.Members {
		if err := e.startFerretDB(ctx, c, i); err != nil {
			return err
		}
	}
	for i := range c.Members {
		if err := engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, c.Members[i].Name+" FerretDB ping",
			func(ctx context.Context) error { return e.ping(ctx, c, i) }); err != nil {
			return err
		}
	}
	e.log.Info("docstore up", "service", c.Service, "members", len(c.Members),
		"patroni", tPG.Sub(t0).Round(time.Millisecond), "total", time.Since(t0).Round(time.Millisecond))
	return nil
}

// StartMember starts member i's etcd, Patroni and FerretDB (those not
// running) and waits until its Patroni API and FerretDB listener answer. It
// does not wait for the member to catch up: Status shows that.
func (e *Engine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	if err := e.Launch(ctx, c, i); err != nil {
		return err
	}
	m := c.Members[i]
	if !etcdMajorityRunning(c) {
		// Patroni serves nothing before its store (etcd, one member per
		// node) has quorum: it starts when enough nodes are back.
		e.log.Info("docstore: member started, waiting for its store's quorum", "member", m.Name)
		return nil
	}
	return engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, m.Name+" Patroni API and FerretDB listener",
		func(ctx context.Context) error {
			if _, err := patroniGet[patroniNode](ctx, m, "/patroni"); err != nil {
				return err
			}
			return dial(ctx, m, FerretDBPort)
		})
}

// Launch starts member i's processes (etcd, Patroni, FerretDB) unless they
// run, without waiting for them: members powered on together must all run
// before their store can have quorum.
func (e *Engine) Launch(ctx context.Context, c *engines.Cluster, i int) error {
	if i < 0 || i >= len(c.Members) {
		return fmt.Errorf("docstore: no member %d", i)
	}
	if err := prepareMember(c, i); err != nil {
		return err
	}
	if err := e.startEtcd(ctx, c, i); err != nil {
		return err
	}
	if err := e.startPatroni(ctx, c, i); err != nil {
		return err
	}
	return e.startFerretDB(ctx, c, i)
}

// etcdMajorityRunning reports whether a strict majority of the members'
// etcd processes runs.
func etcdMajorityRunning(c *engines.Cluster) bool {
	n := 0
	for _, m := range c.Members {
		if running(c, procName(m, "etcd")) {
			n++
		}
	}
	return 2*n > len(c.Members)
}

func running(c *engines.Cluster, name string) bool {
	r, err := proc.Load(c.StateDir, name)
	return err == nil && r.Alive()
}

func (e *Engine) start(ctx context.Context, c *engines.Cluster, spec proc.Spec) error {
	if r, err := proc.Load(c.StateDir, spec.Name); err == nil {
		if r.Alive() {
			return nil
		}
		// Killed but still exiting (a zombie leader whose threads are
		// being torn down): it may hold its ports for a moment yet.
		if err := endTree(ctx, []*proc.Record{r}, syscall.SIGKILL, killWait, nil); err != nil {
			return fmt.Errorf("start %s: previous one: %w", spec.Name, err)
		}
	}
	r, err := proc.Start(c.StateDir, spec)
	if err != nil {
		return err
	}
	e.log.Debug("started", "process", spec.Name, "pid", r.PID)
	return nil
}

func (e *Engine) startEtcd(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	p := memberPaths(m)
	peers := make([]string, len(c.Members))
	for j, o := range c.Members {
		peers[j] = o.Name + "=http://" + hostPort(o.Addr, EtcdPeerPort)
	}
	client := "http://" + hostPort(m.Addr, EtcdClientPort)
	peer := "http://" + hostPort(m.Addr, EtcdPeerPort)
	return e.start(ctx, c, proc.Spec{
		Name: procName(m, "etcd"), NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: "etcd",
		Args: []string{
			"--name", m.Name, "--data-dir", p.etcd,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			// Ignored once the data dir exists (restarts rejoin).
			"--initial-cluster", strings.Join(peers, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", c.Service,
			// Patroni's `etcd:` store speaks the v2 API.
			"--enable-v2=true",
		},
		Log: p.etcdLog,
	})
}

func (e *Engine) startPatroni(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	p := memberPaths(m)
	return e.start(ctx, c, proc.Spec{
		Name: procName(m, "patroni"), NetNS: m.NetNS, Cgroup: m.Cgroup, User: "postgres",
		Path: "patroni", Args: []string{p.patroniYAML},
		Env: []string{"HOME=/var/lib/postgresql", "PGPASSFILE=" + p.pgpass},
		Dir: m.DataDir,
		Log: p.patroniLog,
	})
}

func (e *Engine) startFerretDB(ctx context.Context, c *engines.Cluster, i int) error {
	bin := e.FerretDBPath()
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("FerretDB is not built (run Install): %w", err)
	}
	m := c.Members[i]
	p := memberPaths(m)
	return e.start(ctx, c, proc.Spec{
		Name: procName(m, "ferretdb"), NetNS: m.NetNS, Cgroup: m.Cgroup,
		Path: bin,
		Args: []string{
			"--handler=postgresql",
			"--postgresql-url=" + FerretDBURL(c),
			"--listen-addr=" + hostPort(m.Addr, FerretDBPort),
			"--debug-addr=" + hostPort(m.Addr, ferretDebugPort),
			"--state-dir=" + p.ferret,
			"--telemetry=disable",
			"--log-format=text",
		},
		Dir: p.ferret,
		Log: p.ferrLog,
	})
}

// StopMember stops member i: FerretDB, then Patroni (which shuts its
// PostgreSQL down, handing leadership over), then whatever PostgreSQL is
// left, then etcd. It returns once every process of the member is gone.
func (e *Engine) StopMember(ctx context.Context, c *engines.Cluster, i int) error {
	m, err := c.Member(i)
	if err != nil {
		return err
	}
	return errors.Join(
		stopProc(ctx, c, procName(m, "ferretdb"), ferretGrace, nil),
		stopPatroni(ctx, c, m),
		stopProc(ctx, c, procName(m, "etcd"), etcdGrace, nil),
	)
}

// stopPatroni stops member m's Patroni and then its PostgreSQL, in case
// Patroni did not (SIGKILLed earlier, or after its grace).
func stopPatroni(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	return errors.Join(
		stopProc(ctx, c, procName(m, "patroni"), patroniGrace, notPostmaster(m)),
		stopPostgres(ctx, m),
	)
}

// Stop stops every member, in phases: all FerretDBs, then the Patronis one
// by one (the first member last, so that leadership moves as little as
// possible), then the etcds. etcd keeps its quorum while the Patronis shut
// down, so they clean up their keys instead of retrying an absent DCS.
func (e *Engine) Stop(ctx context.Context, c *engines.Cluster) error {
	var errs []error
	for _, m := range c.Members {
		errs = append(errs, stopProc(ctx, c, procName(m, "ferretdb"), ferretGrace, nil))
	}
	for i := len(c.Members) - 1; i >= 0; i-- {
		errs = append(errs, stopPatroni(ctx, c, c.Members[i]))
	}
	for _, m := range c.Members {
		errs = append(errs, stopProc(ctx, c, procName(m, "etcd"), etcdGrace, nil))
	}
	return errors.Join(errs...)
}

// patroniNode is Patroni's GET /patroni.
type patroniNode struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	Server   int    `json:"server_version"`
	Xlog     struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
	Replication []struct {
		Name      string `json:"application_name"`
		State     string `json:"state"`
		SyncState string `json:"sync_state"`
	} `json:"replication"`
}

// patroniCluster is Patroni's GET /cluster (its view of the DCS).
type patroniCluster struct {
	Members []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		State    string `json:"state"`
		Host     string `json:"host"`
		Timeline int    `json:"timeline"`
		Lag      any    `json:"lag"` // bytes, or "unknown"
	} `json:"members"`
}

// patroniGet reads one Patroni REST resource with a short timeout: Status
// must stay cheap even with members down or frozen.
func patroniGet[T any](ctx context.Context, m engines.Member, path string) (*T, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostPort(m.Addr, PatroniPort)+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient(m).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// /patroni answers 503 for a replica, with the same body; any status
	// with a JSON body is an answer.
	v := new(T)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("%s%s: %s: %w", m.Name, path, resp.Status, err)
	}
	return v, nil
}

func (e *Engine) waitLeaderAndSync(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, startTimeout, 300*time.Millisecond, c.Service+": Patroni leader, sync standby, all members running",
		func(ctx context.Context) error {
			var last error
			for _, m := range c.Members {
				cl, err := patroniGet[patroniCluster](ctx, m, "/cluster")
				if err != nil {
					last = err
					continue
				}
				var leader, sync bool
				up := 0
				for _, cm := range cl.Members {
					running := cm.State == "running" || cm.State == "streaming"
					leader = leader || (cm.Role == RoleLeader && running)
					sync = sync || (cm.Role == RoleSyncStandby && running)
					if running {
						up++
					}
				}
				// Every member, not only the two a commit needs: a
				// scenario starts from a whole cluster.
				if leader && sync && up == len(c.Members) {
					return nil
				}
				last = fmt.Errorf("cluster as seen by %s: %+v", m.Name, cl.Members)
			}
			return last
		})
}

// Status reports each member from its Patroni REST API and FerretDB port.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	st := engines.Status{Engine: "docstore", Version: "FerretDB " + FerretDBVersion + " on Patroni/PostgreSQL 15", Members: make([]engines.MemberStatus, len(c.Members))}
	nodes := make([]*patroniNode, len(c.Members))
	nodeErrs := make([]error, len(c.Members))
	clusters := make([]*patroniCluster, len(c.Members))
	clusterErrs := make([]error, len(c.Members))
	ferretUp := make([]bool, len(c.Members))
	ferretErrs := make([]error, len(c.Members))
	var wg sync.WaitGroup
	// All probes at once: a frozen member costs one timeout, not one per
	// probe and member.
	for i, m := range c.Members {
		wg.Go(func() { nodes[i], nodeErrs[i] = patroniGet[patroniNode](ctx, m, "/patroni") })
		wg.Go(func() { clusters[i], clusterErrs[i] = patroniGet[patroniCluster](ctx, m, "/cluster") })
		wg.Go(func() {
			ferretErrs[i] = dial(ctx, m, FerretDBPort)
			ferretUp[i] = ferretErrs[i] == nil
		})
	}
	wg.Wait()
	// The DCS view of the member that is primary by its own account is the
	// authoritative one, and of two such (an isolated old leader not yet
	// demoted, and the new one) the newer timeline's; otherwise any view.
	var view *patroniCluster
	viewTL := -1
	for i, n := range nodes {
		if clusters[i] == nil {
			continue
		}
		if n != nil && (n.Role == "master" || n.Role == "primary") && n.Timeline > viewTL {
			view, viewTL = clusters[i], n.Timeline
		} else if view == nil {
			view = clusters[i]
		}
	}
	leaderIdx, hasSync := -1, false
	for i, m := range c.Members {
		ms := engines.MemberStatus{Index: i, Name: m.Name}
		n := nodes[i]
		var details []string
		if n != nil {
			ms.Up = n.State == "running"
			details = append(details, "postgres "+n.State, "timeline "+strconv.Itoa(n.Timeline))
		} else {
			details = append(details, "patroni not answering")
		}
		// A running process that ran out of time answering is no evidence.
		ms.TimedOut = running(c, procName(m, "patroni")) && (lab.IsTimeout(nodeErrs[i]) || lab.IsTimeout(clusterErrs[i])) ||
			running(c, procName(m, "ferretdb")) && lab.IsTimeout(ferretErrs[i])
		if view != nil {
			for _, cm := range view.Members {
				if cm.Name != m.Name {
					continue
				}
				ms.Role = cm.Role
				if cm.Role != RoleLeader {
					details = append(details, fmt.Sprintf("lag %v", cm.Lag))
				}
			}
		}
		if ferretUp[i] {
			details = append(details, "ferretdb up")
		} else {
			details = append(details, "ferretdb down")
		}
		lagOK := true
		if view != nil && ms.Role != RoleLeader {
			for _, cm := range view.Members {
				if cm.Name == m.Name {
					lag, isNum := cm.Lag.(float64)
					lagOK = isNum && lag < 16<<20
				}
			}
		}
		ms.Healthy = ms.Up && ferretUp[i] && ms.Role != "" && lagOK
		switch ms.Role {
		case RoleLeader:
			if ms.Up {
				leaderIdx = i
			}
		case RoleSyncStandby:
			hasSync = hasSync || ms.Up
		}
		ms.Detail = strings.Join(details, ", ")
		st.Members[i] = ms
	}
	// synchronous_mode_strict: with no sync standby, commits wait forever.
	// Any running FerretDB reaches the leader (target_session_attrs).
	st.Writable = leaderIdx >= 0 && hasSync && slices.Contains(ferretUp, true)
	return st, nil
}

func dial(ctx context.Context, m engines.Member, port int) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := Dialer(m).DialContext(ctx, "tcp", hostPort(m.Addr, port))
	if err != nil {
		return err
	}
	return conn.Close()
}

// ping runs the MongoDB ping command on member i's FerretDB; FerretDB
// answers it only when it reaches PostgreSQL.
func (e *Engine) ping(ctx context.Context, c *engines.Cluster, i int) error {
	cl, err := e.connect(ctx, c, i)
	if err != nil {
		return err
	}
	defer cl.Disconnect(context.Background()) //nolint:errcheck
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return cl.Ping(ctx, nil)
}

func (e *Engine) connect(ctx context.Context, c *engines.Cluster, i int) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(e.Endpoints(c)[i]).
		SetServerSelectionTimeout(probeTimeout).SetConnectTimeout(probeTimeout)
	opts.SetDialer(Dialer(c.Members[i]))
	return mongo.Connect(ctx, opts)
}

// Prepare creates collections through one FerretDB before any traffic,
// then restarts the other running FerretDBs. Each FerretDB loads collection
// metadata once, on its first backend use (Start's ping), and never again:
// one that did not create a collection does not see it (reads come back
// empty) and inserting creates its table again (SQLSTATE 42P07). So
// collections must not be created through the service during traffic.
func (e *Engine) Prepare(ctx context.Context, c *engines.Cluster, db string, collections []string) error {
	// Retried as a whole until it goes through: right after Start, or
	// with leadership settling, a FerretDB may not reach a writable
	// PostgreSQL yet. Creating is idempotent (NamespaceExists).
	used := -1
	created := false
	err := engines.WaitFor(ctx, memberTimeout, time.Second, "docstore prepare: create collections", func(ctx context.Context) error {
		// The same FerretDB as in an earlier attempt when it answers: one
		// that did not create a collection does not see it.
		var err error
		from, found := max(used, 0), false
		for k := range c.Members {
			i := (from + k) % len(c.Members)
			if err = e.ping(ctx, c, i); err == nil {
				used, found = i, true
				break
			}
		}
		if !found {
			return fmt.Errorf("no FerretDB answers: %w", err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cl, err := e.connect(ctx, c, used)
		if err != nil {
			return err
		}
		defer cl.Disconnect(context.Background()) //nolint:errcheck
		have, err := cl.Database(db).ListCollectionNames(ctx, map[string]any{})
		if err != nil {
			return fmt.Errorf("list collections via %s: %w", c.Members[used].Name, err)
		}
		for _, coll := range collections {
			if slices.Contains(have, coll) {
				continue
			}
			// Set before trying: a create that reports an error may
			// still have created the table, and the retry then finds
			// it listed; the others must restart all the same.
			created = true
			if err := cl.Database(db).CreateCollection(ctx, coll); err != nil {
				var ce mongo.CommandError
				if errors.As(err, &ce) && ce.Code == 48 { // NamespaceExists
					continue
				}
				return fmt.Errorf("create %s.%s via %s: %w", db, coll, c.Members[used].Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	for i, m := range c.Members {
		name := procName(m, "ferretdb")
		if i == used || !running(c, name) {
			continue
		}
		if err := stopProc(ctx, c, name, ferretGrace, nil); err != nil {
			return err
		}
		if err := e.startFerretDB(ctx, c, i); err != nil {
			return err
		}
		if err := engines.WaitFor(ctx, memberTimeout, 200*time.Millisecond, m.Name+" FerretDB ping",
			func(ctx context.Context) error { return e.ping(ctx, c, i) }); err != nil {
			return err
		}
	}
	e.log.Info("docstore collections created; other FerretDBs restarted to load them", "db", db, "via", c.Members[used].Name)
	return nil
}
