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
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Options say how to reach the Galera members.
type Options struct {
	// DSNs of every member (go-sql-driver/mysql), in preference order: all
	// writes go to the first member that works, so that concurrent
	// transactions on one position meet as lock waits on one member rather
	// than as certification conflicts between members.
	DSNs []string
	// Dial opens connections (nil: net.Dialer), e.g. from a lab node.
	Dial engines.DialFunc
	Log  *slog.Logger
	// MaxConns per member (default 64).
	MaxConns int
	// Cooldown: how long a member that failed is passed over (default 3 s).
	Cooldown time.Duration
}

// Store runs the ledger's transactions on a Galera cluster, retrying
// certification conflicts and deadlocks and failing over between members.
type Store struct {
	log      *slog.Logger
	dbs      []*sql.DB
	addrs    []string
	cooldown time.Duration

	mu      sync.Mutex
	cur     int
	badTill []time.Time

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
	if o.Cooldown <= 0 {
		o.Cooldown = 3 * time.Second
	}
	s := &Store{log: o.Log, cooldown: o.Cooldown, badTill: make([]time.Time, len(o.DSNs))}
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
func openDB(dsn string, dial engines.DialFunc, params map[string]string) (*sql.DB, string, error) {
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

// Close closes every pool.
func (s *Store) Close() error {
	var errs []error
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// pick returns the member to use: the first in preference order not
// recently failed, else the one whose cooldown ends first.
func (s *Store) pick() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	best := 0
	for i := range s.dbs {
		if s.badTill[i].Before(now) {
			if i != s.cur {
				s.log.Info("ledger: using member", "addr", s.addrs[i])
				s.cur = i
			}
			return i
		}
		if s.badTill[i].Before(s.badTill[best]) {
			best = i
		}
	}
	s.cur = best
	return best
}

func (s *Store) markBad(i int, err error) {
	s.mu.Lock()
	s.badTill[i] = time.Now().Add(s.cooldown)
	s.mu.Unlock()
	s.log.Warn("ledger: member failed, failing over", "addr", s.addrs[i], "err", err)
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
