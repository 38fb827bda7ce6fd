package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/load/wire"
)

// FulfilBatch is Fulfil for many transfers in one transaction: lock the
// transfers, lock each payee's position once (in index order), commit every
// RESERVED transfer in the order given, one commit. Transfers that are not
// RESERVED (also a second fulfilment of one in the same batch) are left
// alone and their state returned, Duplicate when COMMITTED. A transfer
// the ledger does not hold gets ErrNoTransfer. Failures retry the whole
// batch as PrepareBatch does.
func (s *Store) FulfilBatch(ctx context.Context, fs []wire.Fulfil) []Result {
	res := make([]Result, len(fs))
	if len(fs) == 0 {
		return res
	}
	var got []Result
	err := s.do(ctx, func(ctx context.Context, db *sql.DB) error {
		var err error
		got, err = fulfilTx(ctx, db, fs)
		return err
	})
	switch {
	case err == nil:
		return got
	case len(fs) > 1 && ctx.Err() == nil && classify(err) == permanent:
		for i := range fs {
			res[i] = s.FulfilBatch(ctx, fs[i:i+1])[0]
		}
	default:
		for i := range res {
			res[i].Err = err
		}
	}
	return res
}

func fulfilTx(ctx context.Context, db *sql.DB, fs []wire.Fulfil) ([]Result, error) {
	out := make([]Result, len(fs))
	firstOf := map[string]int{}
	var ids []any
	for i, f := range fs {
		if _, ok := firstOf[f.TransferID]; !ok {
			firstOf[f.TransferID] = i
			ids = append(ids, f.TransferID)
		}
	}
	type held struct {
		amount, payeeAcct int64
		st, reason        string
	}
	err := withConn(ctx, db, func(c *sql.Conn) error {
		// Round trip 1: lock the transfers and read their states.
		q := `SELECT t.transferId, t.amount, tp.participantCurrencyId,
			(SELECT transferStateId FROM transferStateChange s WHERE s.transferId = t.transferId ORDER BY transferStateChangeId DESC LIMIT 1),
			(SELECT COALESCE(reason, '') FROM transferStateChange s WHERE s.transferId = t.transferId ORDER BY transferStateChangeId DESC LIMIT 1)
			FROM transfer t
			JOIN transferParticipant tp ON tp.transferId = t.transferId AND tp.transferParticipantRoleTypeId = ` + fmt.Sprint(rolePayee) + `
			WHERE t.transferId IN (` + marks(len(ids)) + `) FOR UPDATE`
		found := map[string]held{}
		scan := func(r *sql.Rows) error {
			var id string
			var h held
			var st, reason sql.NullString
			if err := r.Scan(&id, &h.amount, &h.payeeAcct, &st, &reason); err != nil {
				return err
			}
			if !st.Valid {
				// The locking read saw a transfer committed after this
				// statement's snapshot, which the state subquery reads:
				// a new transaction will see both.
				return errNotYet
			}
			h.st, h.reason = st.String, reason.String
			found[id] = h
			return nil
		}
		if err := queryRows(ctx, c, "START TRANSACTION; "+q, ids, scan); err != nil {
			return err
		}
		if len(found) < len(ids) {
			// Maybe prepared through another member and not applied here
			// yet: ask again after a causality wait.
			var missing []any
			for _, id := range ids {
				if _, ok := found[id.(string)]; !ok {
					missing = append(missing, id)
				}
			}
			q2 := strings.Replace(q, "IN ("+marks(len(ids))+")", "IN ("+marks(len(missing))+")", 1)
			if err := queryRows(ctx, c, "SET STATEMENT wsrep_sync_wait = 1 FOR "+q2, missing, scan); err != nil {
				return err
			}
		}

		var commit []int // indexes into fs, first fulfilment of a RESERVED transfer
		payees := map[int64]bool{}
		for i, f := range fs {
			if firstOf[f.TransferID] != i {
				continue
			}
			h, ok := found[f.TransferID]
			switch {
			case !ok:
				out[i].Err = fmt.Errorf("%w: %s", ErrNoTransfer, f.TransferID)
			case h.st != stateReserved:
				out[i].Outcome = Outcome{State: publicState(h.st), Reason: h.reason, Duplicate: h.st == stateCommitted}
			default:
				commit = append(commit, i)
				payees[h.payeeAcct] = true
			}
		}
		if len(commit) == 0 {
			_, err := c.ExecContext(ctx, "COMMIT")
			return err
		}

		// Round trip 2: the fulfilments and COMMITTED state changes, then
		// lock the payees' positions.
		var b strings.Builder
		args := make([]any, 0, 6*len(commit)+len(payees))
		now := time.Now().UTC()
		b.WriteString("INSERT INTO transferFulfilment (transferFulfilmentId, transferId, ilpFulfilment, completedDate, isValid) VALUES ")
		for n, i := range commit {
			b.WriteString(sep(n, "(?, ?, ?, ?, TRUE)"))
			args = append(args, fs[i].TransferID, fs[i].TransferID, fs[i].Fulfilment, now)
		}
		b.WriteString("; INSERT INTO transferStateChange (transferId, transferStateId) VALUES ")
		for n, i := range commit {
			b.WriteString(sep(n, "(?, ?)"))
			args = append(args, fs[i].TransferID, stateCommitted)
		}
		pos, err := lockPositions(ctx, c, b.String()+"; ", args, sortedIDs(payees), false)
		if err != nil {
			return err
		}
		// Round trip 3: position changes in order, positions, commit.
		var moves strings.Builder
		var moveArgs []any
		for n, i := range commit {
			h := found[fs[i].TransferID]
			pp, ok := pos[h.payeeAcct]
			if !ok {
				return fmt.Errorf("payee position of account %d: %w", h.payeeAcct, sql.ErrNoRows)
			}
			pp.value -= h.amount
			pp.moved = true
			moves.WriteString(sep(n, positionChangeRow))
			moveArgs = append(moveArgs, pp.id, h.payeeAcct, fs[i].TransferID, stateCommitted, pp.value, -h.amount, pp.reserved)
			out[i].Outcome = Outcome{State: wire.StateCommitted}
		}
		b.Reset()
		args = args[:0]
		finish(&b, &args, moves.String(), moveArgs, pos)
		_, err = c.ExecContext(ctx, b.String(), args...)
		return err
	})
	if isDuplicate(err) {
		// A concurrent fulfilment of one of these transfers won.
		return nil, errNotYet
	}
	if err != nil {
		return nil, err
	}
	for i, f := range fs {
		if first := firstOf[f.TransferID]; first != i {
			out[i] = out[first]
			if out[i].Err == nil {
				out[i].Duplicate = out[i].State == wire.StateCommitted
			}
		}
	}
	return out, nil
}
