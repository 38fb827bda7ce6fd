package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
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

// lastState is the transfer's latest transferStateChange.
func lastState(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string, syncWait bool) (string, string, error) {
	stmt := "SELECT transferStateId, COALESCE(reason, '') FROM transferStateChange WHERE transferId = ? ORDER BY transferStateChangeId DESC LIMIT 1"
	if syncWait {
		// Wait until this member applied every writeset committed anywhere
		// before: the transfer may have been written through another one.
		stmt = "SET STATEMENT wsrep_sync_wait = 1 FOR " + stmt
	}
	var st, reason string
	err := q.QueryRowContext(ctx, stmt, id).Scan(&st, &reason)
	return st, reason, err
}

// Prepare is the prepare and position handlers' work for one transfer, in
// one transaction: record the transfer (RECEIVED_PREPARE), lock the payer's
// position (SELECT … FOR UPDATE), and either refuse it (ABORTED_REJECTED,
// PAYER_LIMIT_ERROR: position + amount would pass the net debit cap; no
// position moves) or reserve it (position += amount, a change row, RESERVED).
// A transfer id seen before is not processed again: its current state is
// returned with Duplicate set.
func (s *Store) Prepare(ctx context.Context, p wire.Prepare) (Outcome, error) {
	if p.Amount <= 0 {
		return Outcome{}, fmt.Errorf("ledger: transfer %s: amount %d must be positive", p.TransferID, p.Amount)
	}
	var out Outcome
	err := s.do(ctx, func(ctx context.Context, db *sql.DB) error {
		out = Outcome{}
		acct, err := s.accounts(ctx, db, p.Currency)
		if err != nil {
			return err
		}
		payerAcct, ok1 := acct[p.Payer]
		payeeAcct, ok2 := acct[p.Payee]
		if !ok1 || !ok2 || p.Payer == p.Payee {
			return fmt.Errorf("%w: %s → %s in %s", ErrUnknownParticipant, p.Payer, p.Payee, p.Currency)
		}
		err = withConn(ctx, db, func(c *sql.Conn) error {
			// Round trip 1: record the transfer. A redelivery fails here on
			// the primary key (1062).
			if _, err := c.ExecContext(ctx, `START TRANSACTION;
				INSERT INTO transfer (transferId, amount, currencyId) VALUES (?, ?, ?);
				INSERT INTO transferParticipant (transferId, participantCurrencyId, transferParticipantRoleTypeId, ledgerEntryTypeId, amount)
					VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?);
				INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?)`,
				p.TransferID, p.Amount, p.Currency,
				p.TransferID, payerAcct, rolePayer, entryPrincipal, p.Amount,
				p.TransferID, payeeAcct, rolePayee, entryPrincipal, -p.Amount,
				p.TransferID, stateReceivedPrepare); err != nil {
				return err
			}
			// Round trip 2: lock the payer's position.
			var posID, value, reserved, limit int64
			if err := c.QueryRowContext(ctx, `SELECT pp.participantPositionId, pp.value, pp.reservedValue, pl.value
				FROM participantPosition pp JOIN participantLimit pl
				  ON pl.participantCurrencyId = pp.participantCurrencyId AND pl.participantLimitTypeId = ? AND pl.isActive
				WHERE pp.participantCurrencyId = ? FOR UPDATE`, limitNetDebitCap, payerAcct).Scan(&posID, &value, &reserved, &limit); err != nil {
				return fmt.Errorf("payer position: %w", err)
			}
			// Round trip 3: refuse or reserve, and commit.
			if value+reserved+p.Amount > limit {
				out = Outcome{State: wire.StateAborted, Reason: reasonPayerLimit}
				_, err := c.ExecContext(ctx, "INSERT INTO transferStateChange (transferId, transferStateId, reason) VALUES (?, ?, ?); COMMIT",
					p.TransferID, stateAbortedRejected, reasonPayerLimit)
				return err
			}
			out = Outcome{State: wire.StateReserved}
			_, err := c.ExecContext(ctx, `INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?);
				UPDATE participantPosition SET value = ?, changedDate = CURRENT_TIMESTAMP(3) WHERE participantPositionId = ?;
				INSERT INTO participantPositionChange (participantPositionId, participantCurrencyId, transferStateChangeId, value, `+"`change`"+`, reservedValue)
					VALUES (?, ?, LAST_INSERT_ID(), ?, ?, ?);
				COMMIT`,
				p.TransferID, stateReserved,
				value+p.Amount, posID,
				posID, payerAcct, value+p.Amount, p.Amount, reserved)
			return err
		})
		if isDuplicate(err) {
			st, reason, err := lastState(ctx, db, p.TransferID, false)
			if errors.Is(err, sql.ErrNoRows) {
				// The row exists but its state change is not visible yet.
				return errNotYet
			}
			if err != nil {
				return err
			}
			out = Outcome{State: publicState(st), Reason: reason, Duplicate: true}
			return nil
		}
		return err
	})
	return out, err
}

// Fulfil is the fulfil handler's commit of a reserved transfer, in one
// transaction: record the fulfilment, lock the payee's position, lower it
// by the amount (a change row), state COMMITTED. A transfer that is not
// RESERVED is left alone: its state is returned (Duplicate when it was
// already COMMITTED).
func (s *Store) Fulfil(ctx context.Context, f wire.Fulfil) (Outcome, error) {
	var out Outcome
	err := s.do(ctx, func(ctx context.Context, db *sql.DB) error {
		out = Outcome{}
		return withConn(ctx, db, func(c *sql.Conn) error {
			if _, err := c.ExecContext(ctx, "START TRANSACTION"); err != nil {
				return err
			}
			// Lock the transfer and the payee's position; read the state.
			q := `SELECT t.amount, tp.participantCurrencyId, pp.participantPositionId, pp.value, pp.reservedValue,
				(SELECT transferStateId FROM transferStateChange s WHERE s.transferId = t.transferId ORDER BY transferStateChangeId DESC LIMIT 1)
				FROM transfer t
				JOIN transferParticipant tp ON tp.transferId = t.transferId AND tp.transferParticipantRoleTypeId = ?
				JOIN participantPosition pp ON pp.participantCurrencyId = tp.participantCurrencyId
				WHERE t.transferId = ? FOR UPDATE`
			var amount, payeeAcct, posID, value, reserved int64
			var st sql.NullString
			err := c.QueryRowContext(ctx, q, rolePayee, f.TransferID).Scan(&amount, &payeeAcct, &posID, &value, &reserved, &st)
			if errors.Is(err, sql.ErrNoRows) {
				// Maybe prepared through another member and not applied here
				// yet: ask again after a causality wait.
				err = c.QueryRowContext(ctx, "SET STATEMENT wsrep_sync_wait = 1 FOR "+q, rolePayee, f.TransferID).Scan(&amount, &payeeAcct, &posID, &value, &reserved, &st)
			}
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %s", ErrNoTransfer, f.TransferID)
			}
			if err != nil {
				return err
			}
			if st.String != stateReserved {
				_, reason, err := lastState(ctx, c, f.TransferID, false)
				if err != nil {
					return fmt.Errorf("state of %s: %w", f.TransferID, err)
				}
				out = Outcome{State: publicState(st.String), Reason: reason, Duplicate: st.String == stateCommitted}
				_, err = c.ExecContext(ctx, "COMMIT")
				return err
			}
			out = Outcome{State: wire.StateCommitted}
			_, err = c.ExecContext(ctx, `INSERT INTO transferFulfilment (transferFulfilmentId, transferId, ilpFulfilment, completedDate, isValid) VALUES (?, ?, ?, ?, TRUE);
				INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?);
				UPDATE participantPosition SET value = ?, changedDate = CURRENT_TIMESTAMP(3) WHERE participantPositionId = ?;
				INSERT INTO participantPositionChange (participantPositionId, participantCurrencyId, transferStateChangeId, value, `+"`change`"+`, reservedValue)
					VALUES (?, ?, LAST_INSERT_ID(), ?, ?, ?);
				COMMIT`,
				f.TransferID, f.TransferID, f.Fulfilment, time.Now().UTC(),
				f.TransferID, stateCommitted,
				value-amount, posID,
				posID, payeeAcct, value-amount, -amount, reserved)
			if isDuplicate(err) {
				// A concurrent fulfilment of the same transfer won.
				return errNotYet
			}
			return err
		})
	})
	return out, err
}
