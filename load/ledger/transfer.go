package ledger

import (
	"context"
	"database/sql"
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

// withTx runs f in one transaction, committing when it returns nil.
func withTx(ctx context.Context, db *sql.DB, f func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
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
		err := withTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO transfer (transferId, amount, currencyId) VALUES (?, ?, ?)",
				p.TransferID, p.Amount, p.Currency); err != nil {
				return err
			}
			// Both accounts (and the payer's cap) in one statement.
			rows, err := tx.QueryContext(ctx, `SELECT p.name, pc.participantCurrencyId
				FROM participantCurrency pc JOIN participant p USING (participantId)
				WHERE p.name IN (?, ?) AND pc.currencyId = ? AND pc.ledgerAccountTypeId = ?`,
				p.Payer, p.Payee, p.Currency, ledgerAccountPosition)
			if err != nil {
				return err
			}
			acct := map[string]int64{}
			for rows.Next() {
				var name string
				var id int64
				if err := rows.Scan(&name, &id); err != nil {
					rows.Close()
					return err
				}
				acct[name] = id
			}
			if err := rows.Close(); err != nil {
				return err
			}
			payerAcct, ok1 := acct[p.Payer]
			payeeAcct, ok2 := acct[p.Payee]
			if !ok1 || !ok2 || p.Payer == p.Payee {
				return fmt.Errorf("%w: %s → %s in %s", ErrUnknownParticipant, p.Payer, p.Payee, p.Currency)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO transferParticipant
				(transferId, participantCurrencyId, transferParticipantRoleTypeId, ledgerEntryTypeId, amount)
				VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)`,
				p.TransferID, payerAcct, rolePayer, entryPrincipal, p.Amount,
				p.TransferID, payeeAcct, rolePayee, entryPrincipal, -p.Amount); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?)",
				p.TransferID, stateReceivedPrepare); err != nil {
				return err
			}
			var posID, value, reserved, limit int64
			if err := tx.QueryRowContext(ctx, `SELECT pp.participantPositionId, pp.value, pp.reservedValue, pl.value
				FROM participantPosition pp JOIN participantLimit pl
				  ON pl.participantCurrencyId = pp.participantCurrencyId AND pl.participantLimitTypeId = ? AND pl.isActive
				WHERE pp.participantCurrencyId = ? FOR UPDATE`, limitNetDebitCap, payerAcct).Scan(&posID, &value, &reserved, &limit); err != nil {
				return fmt.Errorf("payer position: %w", err)
			}
			if value+reserved+p.Amount > limit {
				out = Outcome{State: wire.StateAborted, Reason: reasonPayerLimit}
				_, err := tx.ExecContext(ctx, "INSERT INTO transferStateChange (transferId, transferStateId, reason) VALUES (?, ?, ?)",
					p.TransferID, stateAbortedRejected, reasonPayerLimit)
				return err
			}
			res, err := tx.ExecContext(ctx, "INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?)",
				p.TransferID, stateReserved)
			if err != nil {
				return err
			}
			tsc, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE participantPosition SET value = ?, changedDate = CURRENT_TIMESTAMP(3) WHERE participantPositionId = ?",
				value+p.Amount, posID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO participantPositionChange (participantPositionId, participantCurrencyId, transferStateChangeId, value, `change`, reservedValue) VALUES (?, ?, ?, ?, ?, ?)",
				posID, payerAcct, tsc, value+p.Amount, p.Amount, reserved); err != nil {
				return err
			}
			out = Outcome{State: wire.StateReserved}
			return nil
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
		err := withTx(ctx, db, func(tx *sql.Tx) error {
			var amount int64
			var payeeAcct int64
			err := tx.QueryRowContext(ctx, `SELECT t.amount, tp.participantCurrencyId FROM transfer t
				JOIN transferParticipant tp ON tp.transferId = t.transferId AND tp.transferParticipantRoleTypeId = ?
				WHERE t.transferId = ? FOR UPDATE`, rolePayee, f.TransferID).Scan(&amount, &payeeAcct)
			if errors.Is(err, sql.ErrNoRows) {
				// Maybe prepared through another member and not applied here
				// yet: ask again after a causality wait.
				err = tx.QueryRowContext(ctx, `SET STATEMENT wsrep_sync_wait = 1 FOR SELECT t.amount, tp.participantCurrencyId FROM transfer t
					JOIN transferParticipant tp ON tp.transferId = t.transferId AND tp.transferParticipantRoleTypeId = ?
					WHERE t.transferId = ? FOR UPDATE`, rolePayee, f.TransferID).Scan(&amount, &payeeAcct)
			}
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %s", ErrNoTransfer, f.TransferID)
			}
			if err != nil {
				return err
			}
			st, reason, err := lastState(ctx, tx, f.TransferID, false)
			if err != nil {
				return fmt.Errorf("state of %s: %w", f.TransferID, err)
			}
			if st != stateReserved {
				out = Outcome{State: publicState(st), Reason: reason, Duplicate: st == stateCommitted}
				return nil
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO transferFulfilment (transferFulfilmentId, transferId, ilpFulfilment, completedDate, isValid) VALUES (?, ?, ?, ?, TRUE)",
				f.TransferID, f.TransferID, f.Fulfilment, time.Now().UTC()); err != nil {
				return err
			}
			var posID, value, reserved int64
			if err := tx.QueryRowContext(ctx, "SELECT participantPositionId, value, reservedValue FROM participantPosition WHERE participantCurrencyId = ? FOR UPDATE",
				payeeAcct).Scan(&posID, &value, &reserved); err != nil {
				return fmt.Errorf("payee position: %w", err)
			}
			res, err := tx.ExecContext(ctx, "INSERT INTO transferStateChange (transferId, transferStateId) VALUES (?, ?)", f.TransferID, stateCommitted)
			if err != nil {
				return err
			}
			tsc, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE participantPosition SET value = ?, changedDate = CURRENT_TIMESTAMP(3) WHERE participantPositionId = ?",
				value-amount, posID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO participantPositionChange (participantPositionId, participantCurrencyId, transferStateChangeId, value, `change`, reservedValue) VALUES (?, ?, ?, ?, ?, ?)",
				posID, payeeAcct, tsc, value-amount, -amount, reserved); err != nil {
				return err
			}
			out = Outcome{State: wire.StateCommitted}
			return nil
		})
		if isDuplicate(err) {
			// A concurrent fulfilment of the same transfer won.
			return errNotYet
		}
		return err
	})
	return out, err
}
