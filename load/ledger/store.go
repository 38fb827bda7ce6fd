package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/lab"
)

// Options say how to reach the MySQL members (MariaDB Galera, or async
// replication where only the primary takes writes).
type Options struct {
	// DSNs of every member (go-sql-driver/mysql), in preference order. On
	// Galera every Store writes through one member, the cluster's writer
	// (see Store); the order says which member this Store proposes when
	// the writer has left the cluster. On async replication the writable
	// member is the writer.
	DSNs []string
	// Dial opens connections (nil: net.Dialer), e.g. from a lab node.
	Dial lab.DialFunc
	Log  *slog.Logger
	// MaxConns per member (default 64).
	MaxConns int
	// ProbeEvery: how often a member that failed is health-checked; it
	// takes writes again after two checks in a row pass (default 1 s).
	ProbeEvery time.Duration
}

// Store runs the ledger's transactions on a Galera cluster, retrying
// certification conflicts and deadlocks and failing over between members;
// or on async replication, where the read-only replicas stay out of
// rotation and writes wait for the primary.
//
// On Galera every Store (one per handler process) writes through the same
// member, as central-ledger writes to the single primary of MySQL group
// replication: concurrent transactions on one position then meet as lock
// waits on one member, never as writes to one row through two. The writer
// is a row in the cluster itself (writerTable), so all Stores agree on it;
// it changes only when it has left the cluster's Primary component (seen
// from a Synced member), by a conditional update that Galera's
// certification lets exactly one proposer win. A member that comes back
// does not take the writes back (no failback), as a group replication
// primary does not.
type Store struct {
	log        *slog.Logger
	dbs        []*sql.DB
	addrs      []string
	probeEvery time.Duration
	// closed stops the health probes.
	closed    chan struct{}
	closeOnce sync.Once
	probes    sync.WaitGroup

	// electMu makes one election at a time per Store.
	electMu sync.Mutex

	mu sync.Mutex
	// cur is the writer, valid when known.
	cur   int
	known bool
	// bad members are out of rotation until a health probe passes, as a
	// MySQL router would take them out: sending live transactions to a
	// member to find out whether it is back costs a read timeout each time
	// it is not.
	bad []bool

	acctMu sync.Mutex
	acct   map[string]map[string]int64 // currency → participant → account
}

// Open prepares connection pools to every member (it connects lazily).
func Open(o Options) (*Store, error) {
	if len(o.DSNs) == 0 {
		return nil, errors.New("ledger: no DSN")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 64
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = time.Second
	}
	s := &Store{log: o.Log, probeEvery: o.ProbeEvery, closed: make(chan struct{}),
		bad: make([]bool, len(o.DSNs))}
	for _, dsn := range o.DSNs {
		// A lock wait ends well before the DSN's read timeout: a batch
		// queued behind others on the positions then gets 1205 and is
		// retried on the same member, instead of a socket timeout that
		// would look like a dead member and move the writes elsewhere
		// (where they would meet as certification conflicts).
		db, addr, err := openDB(dsn, o.Dial, map[string]string{"innodb_lock_wait_timeout": "2"})
		if err != nil {
			s.Close()
			return nil, err
		}
		db.SetMaxOpenConns(o.MaxConns)
		db.SetMaxIdleConns(o.MaxConns)
		db.SetConnMaxIdleTime(30 * time.Second)
		s.dbs = append(s.dbs, db)
		s.addrs = append(s.addrs, addr)
	}
	s.probes.Add(1)
	go s.follow()
	return s, nil
}

// openDB opens one member's pool with the dialer and extra session
// variables.
func openDB(dsn string, dial lab.DialFunc, params map[string]string) (*sql.DB, string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: %w", err)
	}
	// Client-side interpolation saves a prepare round trip per statement,
	// and several statements go in one round trip: each round trip costs
	// a context switch on the lab's shared cores.
	cfg.InterpolateParams = true
	cfg.MultiStatements = true
	if dial != nil {
		cfg.DialFunc = dial
	}
	if len(params) > 0 && cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	for k, v := range params {
		cfg.Params[k] = v
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("ledger: %w", err)
	}
	return sql.OpenDB(conn), cfg.Addr, nil
}

// Close stops the health probes and closes every pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.probes.Wait()
	var errs []error
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// pick returns the writer, electing one (see Store) when this Store does
// not know it or has seen it fail; an error when no member can say.
func (s *Store) pick(ctx context.Context) (int, error) {
	if i, ok := s.writer(); ok {
		return i, nil
	}
	return s.elect(ctx)
}

// writer is the writer in use, ok when this Store knows it and has not
// seen it fail.
func (s *Store) writer() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.known && !s.bad[s.cur]
}

// use makes member i the writer.
func (s *Store) use(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known && s.cur == i {
		return
	}
	s.cur, s.known = i, true
	s.log.Info("ledger: using member", "addr", s.addrs[i])
}

// elect learns the writer from the first member in preference order that
// is in rotation, Synced and in the Primary component, electing that
// member when the writer recorded has left the component.
func (s *Store) elect(ctx context.Context) (int, error) {
	s.electMu.Lock()
	defer s.electMu.Unlock()
	if i, ok := s.writer(); ok {
		// Another transaction of this Store elected meanwhile.
		return i, nil
	}
	s.mu.Lock()
	var cands []int
	for i := range s.dbs {
		if !s.bad[i] {
			cands = append(cands, i)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, j := range cands {
		w, err := s.writerVia(ctx, j)
		if err == nil {
			s.mu.Lock()
			bad := s.bad[w]
			s.mu.Unlock()
			if bad {
				// The cluster keeps a member this Store cannot use: wait
				// for it (its probe) or for the cluster to drop it;
				// writing elsewhere would make two writers. Not made the
				// writer in use: once its probe passes, the next write
				// must ask the cluster again, which may have elected
				// another meanwhile.
				return -1, fmt.Errorf("ledger: writer %s is still in the cluster but failed here", s.addrs[w])
			}
			s.use(w)
			return w, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.addrs[j], err))
		if classify(err) == failover || errors.Is(err, errUnhealthy) {
			s.markBad(j, err)
		}
	}
	if len(errs) == 0 {
		return -1, errors.New("ledger: every member is out of rotation")
	}
	return -1, errors.Join(errs...)
}

// writerTable records the cluster's writer; epoch orders the elections.
const writerTable = "chaosloop_writer"

var writerSchema = []string{
	"CREATE TABLE IF NOT EXISTS " + writerTable + ` (
		id TINYINT PRIMARY KEY,
		addr VARCHAR(255) NOT NULL,
		epoch BIGINT NOT NULL
	) ENGINE=InnoDB`,
	"INSERT IGNORE INTO " + writerTable + " (id, addr, epoch) VALUES (1, '', 0)",
}

// errUnhealthy marks a member that answers but must not take writes.
var errUnhealthy = errors.New("ledger: member not ready for writes")

// writerVia asks member j for the writer (j must be Synced and in the
// Primary component), electing j when the recorded writer is not in j's
// component. Without Galera, j itself is the writer (healthy refuses the
// read-only replicas of async replication).
func (s *Store) writerVia(ctx context.Context, j int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db := s.dbs[j]
	galera, err := healthy(ctx, db)
	if err != nil {
		return -1, err
	}
	if !galera {
		// Async replication: the one writable member is the writer.
		return j, nil
	}
	members, err := component(ctx, db)
	if err != nil {
		return -1, err
	}
	for range 20 {
		addr, epoch, err := readWriter(ctx, db)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1146 { // no such table
			for _, q := range writerSchema {
				if _, err := db.ExecContext(ctx, q); err != nil {
					return -1, err
				}
			}
			continue
		}
		if err != nil {
			return -1, err
		}
		if members[addr] {
			w := slices.Index(s.addrs, addr)
			if w < 0 {
				return -1, fmt.Errorf("ledger: the cluster's writer %s is not among this store's members %v", addr, s.addrs)
			}
			return w, nil
		}
		res, err := db.ExecContext(ctx, "UPDATE "+writerTable+" SET addr = ?, epoch = epoch + 1 WHERE id = 1 AND epoch = ?", s.addrs[j], epoch)
		if err != nil {
			if classify(err) == retrySame {
				continue
			}
			return -1, err
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			s.log.Warn("ledger: elected a new writer", "addr", s.addrs[j], "previous", addr, "epoch", epoch+1)
			return j, nil
		}
		// Another Store elected first: read its choice.
	}
	return -1, errors.New("ledger: no writer after 20 tries")
}

// readWriter reads the writer row after every writeset this member has
// received is applied (wsrep_sync_wait), so a member never answers with a
// choice the cluster has already replaced.
func readWriter(ctx context.Context, db *sql.DB) (addr string, epoch int64, err error) {
	err = db.QueryRowContext(ctx, "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT addr, epoch FROM "+writerTable+" WHERE id = 1").Scan(&addr, &epoch)
	return addr, epoch, err
}

// component returns the client addresses of the members in the Primary
// component Galera member db belongs to.
func component(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	var name, value string
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_incoming_addresses'").Scan(&name, &value); err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for a := range strings.SplitSeq(value, ",") {
		if a = strings.TrimSpace(a); a != "" {
			m[a] = true
		}
	}
	return m, nil
}

// follow re-reads the writer every probe period through the one in use,
// so a Store that missed an election (its writer left the component and
// came back while it was idle) moves within a period.
func (s *Store) follow() {
	defer s.probes.Done()
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		i, ok := s.writer()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.probeEvery)
		addr, _, err := readWriter(ctx, s.dbs[i])
		cancel()
		switch w := slices.Index(s.addrs, addr); {
		case err == nil && w >= 0 && w != i:
			s.use(w)
		case err != nil && classify(err) == failover && !errors.Is(err, context.DeadlineExceeded):
			// An idle Store must not write through a writer that
			// failed (it may come back after another was elected):
			// ask the cluster before the next write. A slow answer
			// proves nothing on a busy machine.
			s.markBad(i, err)
		}
	}
}

// markBad takes member i out of rotation and starts its health probe.
func (s *Store) markBad(i int, err error) {
	s.mu.Lock()
	was := s.bad[i]
	s.bad[i] = true
	if s.known && s.cur == i {
		// Ask the cluster again before the next write: by the time this
		// member is back, another may have been elected.
		s.known = false
	}
	s.mu.Unlock()
	if was {
		return
	}
	s.log.Warn("ledger: member failed, failing over", "addr", s.addrs[i], "err", err)
	s.probes.Add(1)
	go s.probe(i)
}

// probe health-checks member i until two checks in a row pass, then puts
// it back in rotation.
func (s *Store) probe(i int) {
	defer s.probes.Done()
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	passed := 0
	for passed < 2 {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.probeEvery)
		_, err := healthy(ctx, s.dbs[i])
		cancel()
		if err != nil {
			passed = 0
			continue
		}
		passed++
	}
	s.mu.Lock()
	s.bad[i] = false
	s.mu.Unlock()
	s.log.Info("ledger: member healthy again", "addr", s.addrs[i])
}

// healthy checks that a member answers, takes writes (read_only off: an
// async replica never does) and, on Galera, is in the Primary component
// and Synced (what a Galera-aware router checks before sending writes).
// galera says whether the member runs Galera replication (wsrep_on).
func healthy(ctx context.Context, db *sql.DB) (galera bool, err error) {
	var readOnly bool
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil {
		return false, err
	}
	if readOnly {
		return false, fmt.Errorf("%w: read_only (a replica)", errUnhealthy)
	}
	var name, wsrepOn string
	switch err := db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'").Scan(&name, &wsrepOn); {
	case errors.Is(err, sql.ErrNoRows): // a server built without wsrep
	case err != nil:
		return false, err
	}
	galera = strings.EqualFold(wsrepOn, "ON")
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'wsrep_ready', 'wsrep_local_state')")
	if err != nil {
		return galera, err
	}
	defer rows.Close()
	// Uptime is always there: requiring it makes a pass rest on a status
	// the member returned, not merely on finding no bad value.
	answered := false
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return galera, err
		}
		switch {
		case strings.EqualFold(name, "Uptime"):
			answered = true
		case !galera:
			// A MariaDB built with wsrep but not running it reports
			// wsrep_ready OFF.
		case strings.EqualFold(name, "wsrep_ready") && value != "ON":
			return galera, fmt.Errorf("%w: wsrep_ready=%s", errUnhealthy, value)
		case strings.EqualFold(name, "wsrep_local_state") && value != "4":
			return galera, fmt.Errorf("%w: wsrep_local_state=%s (not Synced)", errUnhealthy, value)
		}
	}
	if err := rows.Err(); err != nil {
		return galera, err
	}
	if !answered {
		return galera, errors.New("no status returned")
	}
	return galera, nil
}

// Error kinds of a failed attempt.
type errKind int

const (
	permanent errKind = iota
	retrySame         // deadlock, certification conflict, lock wait
	failover          // member not Primary, gone or unreachable
)

// errNotYet marks a read that found nothing yet on a member that may not
// have applied a writeset committed elsewhere.
var errNotYet = errors.New("ledger: not found yet")

func classify(err error) errKind {
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, errNotYet):
		return retrySame
	case errors.As(err, &me):
		switch me.Number {
		case 1213, // ER_LOCK_DEADLOCK: also Galera's certification failure
			1205, // ER_LOCK_WAIT_TIMEOUT
			1180, // ER_ERROR_DURING_COMMIT
			1614: // ER_XA_RBDEADLOCK
			return retrySame
		case 1047, // WSREP has not yet prepared node for application use
			1290, // ER_OPTION_PREVENTS_STATEMENT: read_only, an async replica
			1053, // server shutdown in progress
			1927, // connection killed
			1040, // too many connections
			4031: // idle connection closed by server
			return failover
		}
		return permanent
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, sql.ErrConnDone):
		return failover
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return failover
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return failover
	}
	return permanent
}

// do runs f on the current member until it succeeds, fails permanently, or
// ctx ends; conflicts are retried in place, member failures move on to the
// next member. f must be idempotent (every transaction here is).
func (s *Store) do(ctx context.Context, f func(ctx context.Context, db *sql.DB) error) error {
	backoff := 10 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		i, err := s.pick(ctx)
		if err == nil {
			err = f(ctx, s.dbs[i])
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return fmt.Errorf("ledger: %w (last error: %v)", ctx.Err(), last)
		}
		last = err
		switch {
		case i < 0:
			// No writer yet: wait for the cluster or the probes.
		case classify(err) == permanent:
			return err
		case classify(err) == failover:
			s.markBad(i, err)
		default:
			if attempt > 0 && attempt%50 == 0 {
				s.log.Warn("ledger: still retrying", "addr", s.addrs[i], "attempts", attempt, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ledger: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}
