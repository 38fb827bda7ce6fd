package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/chaosloop/chaosloop/load/wire"
)

// Outcome is what a prepare or fulfil did.
type Outcome struct {
	// State is the transfer's state afterwards: RESERVED, COMMITTED or
	// ABORTED (wire.State*).
	State string
	// Duplicate: the transfer had been processed before (a redelivery);
	// nothing moved this time.
	Duplicate bool
	// Reason of a refusal (PAYER_LIMIT_ERROR).
	Reason string
}

// ErrUnknownParticipant is returned for a prepare naming no known DFSP in
// the currency; ErrNoTransfer for a fulfil of a transfer the ledger does
// not hold.
var (
	ErrUnknownParticipant = errors.New("ledger: unknown participant or currency")
	ErrNoTransfer         = errors.New("ledger: no such transfer")
)

func isDuplicate(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// publicState maps central-ledger's internal states to the ones the
// history and the notifications use.
func publicState(internal string) string {
	switch internal {
	case stateReceivedPrepare:
		return wire.StateReceived
	case stateAbortedRejected:
		return wire.StateAborted
	}
	return internal
}

// withConn runs f on one connection; f starts and commits its own
// transaction (several statements per round trip), and on an error the
// transaction is rolled back here, or the connection discarded when even
// that fails.
func withConn(ctx context.Context, db *sql.DB, f func(c *sql.Conn) error) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := f(c); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := c.ExecContext(rctx, "ROLLBACK"); rerr != nil {
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
		}
		return err
	}
	return nil
}

// accounts returns the participants' position account ids in a currency
// (participantCurrencyId), cached: they never change once set up.
func (s *Store) accounts(ctx context.Context, db *sql.DB, currency string) (map[string]int64, error) {
	s.acctMu.Lock()
	defer s.acctMu.Unlock()
	if m, ok := s.acct[currency]; ok {
		return m, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT p.name, pc.participantCurrencyId
		FROM participantCurrency pc JOIN participant p USING (participantId)
		WHERE pc.currencyId = ? AND pc.ledgerAccountTypeId = ?`, currency, ledgerAccountPosition)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var name string
		var id int64
		if err := rows.Scan(&name, &id); err != nil {
			return nil, err
		}
		m[name] = id
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(m) > 0 {
		if s.acct == nil {
			s.acct = map[string]map[string]int64{}
		}
		s.acct[currency] = m
	}
	return m, nil
}

// Prepare is the prepare and position handlers' work for one transfer, in
// one transaction: record the transfer (RECEIVED_PREPARE), lock the payer's
// position (SELECT … FOR UPDATE), and either refuse it (ABORTED_REJECTED,
// PAYER_LIMIT_ERROR: position + amount would pass the net debit cap; no
// position moves) or reserve it (position += amount, a change row, RESERVED).
// A transfer id seen before is not processed again: its current state is
// returned with Duplicate set. It is PrepareBatch of one.
func (s *Store) Prepare(ctx context.Context, p wire.Prepare) (Outcome, error) {
	r := s.PrepareBatch(ctx, []wire.Prepare{p})[0]
	return r.Outcome, r.Err
}

// Fulfil is the fulfil handler's commit of a reserved transfer, in one
// transaction: record the fulfilment, lock the payee's position, lower it
// by the amount (a change row), state COMMITTED. A transfer that is not
// RESERVED is left alone: its state is returned (Duplicate when it was
// already COMMITTED). It is FulfilBatch of one.
func (s *Store) Fulfil(ctx context.Context, f wire.Fulfil) (Outcome, error) {
	r := s.FulfilBatch(ctx, []wire.Fulfil{f})[0]
	return r.Outcome, r.Err
}
