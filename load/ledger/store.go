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
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/lab"
)

// Options say how to reach the MySQL members (MariaDB Galera, or async
// replication where only the primary takes writes).
type Options struct {
	// DSNs of every member (go-sql-driver/mysql), in preference order: all
	// writes go to the first member that works, so that concurrent
	// transactions on one position meet as lock waits on one member rather
	// than as certification conflicts between members.
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
type Store struct {
	log        *slog.Logger
	dbs        []*sql.DB
	addrs      []string
	probeEvery time.Duration
	// closed stops the health probes.
	closed    chan struct{}
	closeOnce sync.Once
	probes    sync.WaitGroup

	mu  sync.Mutex
	cur int
	// bad members are out of rotation until a health probe passes, as a
	// MySQL router would take them out: sending live transactions to a
	// member to find out whether it is back costs a read timeout each time
	// it is not.
	bad      []bool
	failedAt []time.Time

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
		bad: make([]bool, len(o.DSNs)), failedAt: make([]time.Time, len(o.DSNs))}
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

// pick returns the member to use: the first in preference order that is
// not out of rotation, else (all are) the one that failed longest ago.
func (s *Store) pick() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i := range s.dbs {
		if !s.bad[i] {
			best = i
			break
		}
	}
	if best < 0 {
		best = 0
		for i := range s.dbs {
			if s.failedAt[i].Before(s.failedAt[best]) {
				best = i
			}
		}
	}
	if best != s.cur {
		s.log.Info("ledger: using member", "addr", s.addrs[best])
		s.cur = best
	}
	return best
}

// markBad takes member i out of rotation and starts its health probe.
func (s *Store) markBad(i int, err error) {
	s.mu.Lock()
	was := s.bad[i]
	s.bad[i], s.failedAt[i] = true, time.Now()
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
		err := healthy(ctx, s.dbs[i])
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
func healthy(ctx context.Context, db *sql.DB) error {
	var readOnly bool
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil {
		return err
	}
	if readOnly {
		return errors.New("read_only (a replica)")
	}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime', 'wsrep_ready', 'wsrep_local_state')")
	if err != nil {
		return err
	}
	defer rows.Close()
	// Uptime is always there: requiring it makes a pass rest on a status
	// the member returned, not merely on finding no bad value.
	answered := false
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return err
		}
		switch {
		case strings.EqualFold(name, "Uptime"):
			answered = true
		case strings.EqualFold(name, "wsrep_ready") && value != "ON":
			return fmt.Errorf("wsrep_ready=%s", value)
		case strings.EqualFold(name, "wsrep_local_state") && value != "4":
			return fmt.Errorf("wsrep_local_state=%s (not Synced)", value)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if !answered {
		return errors.New("no status returned")
	}
	return nil
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
		i := s.pick()
		err := f(ctx, s.dbs[i])
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return fmt.Errorf("ledger: %w (last error: %v)", ctx.Err(), last)
		}
		last = err
		switch classify(err) {
		case permanent:
			return err
		case failover:
			s.markBad(i, err)
		case retrySame:
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
