package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/chaosloop/chaosloop/load/wire"
)

// Result is one transfer's outcome in a batch: Err is set when that
// transfer was not processed (and Outcome is then meaningless).
type Result struct {
	Outcome
	Err error
}

// PrepareBatch is Prepare for many transfers in one transaction, after
// central-ledger's batch position handler: every transfer is recorded with
// multi-row inserts, each payer's position is locked once (in index order,
// so concurrent batches queue rather than deadlock), the transfers are
// reserved or refused in the order given — each seeing the position the
// ones before it left, exactly as one Prepare after another would — and
// one commit ends it. Transfer ids seen before (also earlier in the same
// batch) are not processed again: Duplicate is set with their state.
//
// A conflict (deadlock, certification failure, a concurrent duplicate)
// rolls the whole batch back and retries it from the start; nothing is
// carried over from a failed attempt, so nothing applies twice. A
// permanent error (say, one malformed transfer) is retried one transfer at
// a time, so it fails only the transfer that causes it.
func (s *Store) PrepareBatch(ctx context.Context, ps []wire.Prepare) []Result {
	res := make([]Result, len(ps))
	var idx []int
	for i, p := range ps {
		if p.Amount <= 0 {
			res[i].Err = fmt.Errorf("ledger: transfer %s: amount %d must be positive", p.TransferID, p.Amount)
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return res
	}
	var got []Result
	err := s.do(ctx, func(ctx context.Context, db *sql.DB) error {
		var err error
		got, err = s.prepareTx(ctx, db, ps, idx)
		return err
	})
	switch {
	case err == nil:
		for k, i := range idx {
			res[i] = got[k]
		}
	case len(idx) > 1 && ctx.Err() == nil && classify(err) == permanent:
		for _, i := range idx {
			res[i] = s.PrepareBatch(ctx, ps[i:i+1])[0]
		}
	default:
		for _, i := range idx {
			res[i].Err = err
		}
	}
	return res
}

// prepared is a prepare with its accounts resolved; first is the index
// (in the batch) of the first prepare of its transfer id, -1 when refused
// before the database.
type prepared struct {
	wire.Prepare
	payerAcct, payeeAcct int64
	first                int
}

// prepareTx is one attempt of PrepareBatch for ps[idx...]; it returns one
// result per idx entry. It keeps nothing from a previous attempt.
func (s *Store) prepareTx(ctx context.Context, db *sql.DB, ps []wire.Prepare, idx []int) ([]Result, error) {
	out := make([]Result, len(idx))
	items := make([]prepared, len(idx))
	firstOf := map[string]int{}
	var ids []any // distinct ids of valid prepares
	for k, i := range idx {
		p := ps[i]
		acct, err := s.accounts(ctx, db, p.Currency)
		if err != nil {
			return nil, err
		}
		payer, ok1 := acct[p.Payer]
		payee, ok2 := acct[p.Payee]
		if !ok1 || !ok2 || p.Payer == p.Payee {
			out[k].Err = fmt.Errorf("%w: %s → %s in %s", ErrUnknownParticipant, p.Payer, p.Payee, p.Currency)
			items[k].first = -1
			continue
		}
		f, seen := firstOf[p.TransferID]
		if !seen {
			f = k
			firstOf[p.TransferID] = k
			ids = append(ids, p.TransferID)
		}
		items[k] = prepared{Prepare: p, payerAcct: payer, payeeAcct: payee, first: f}
	}
	if len(ids) == 0 {
		return out, nil
	}

	err := withConn(ctx, db, func(c *sql.Conn) error {
		// Round trip 1, outside the transaction: which were processed
		// before. One committed meanwhile makes the insert below fail on
		// its primary key (1062), and the attempt is retried.
		seen := map[string]Outcome{}
		if err := queryRows(ctx, c, `SELECT transferId, transferStateId, COALESCE(reason, '') FROM transferStateChange
			WHERE transferId IN (`+marks(len(ids))+`) ORDER BY transferStateChangeId`, ids, func(r *sql.Rows) error {
			var id, st, reason string
			if err := r.Scan(&id, &st, &reason); err != nil {
				return err
			}
			seen[id] = Outcome{State: publicState(st), Reason: reason, Duplicate: true}
			return nil
		}); err != nil {
			return err
		}
		var fresh []prepared
		var freshAt []int // index in items of each fresh prepare
		payers := map[int64]bool{}
		for k, it := range items {
			if it.first != k {
				continue
			}
			if o, ok := seen[it.TransferID]; ok {
				out[k].Outcome = o
				continue
			}
			fresh = append(fresh, it)
			freshAt = append(freshAt, k)
			payers[it.payerAcct] = true
		}
		if len(fresh) == 0 {
			return nil
		}
		return s.reserve(ctx, c, fresh, sortedIDs(payers), func(j int, o Outcome) { out[freshAt[j]].Outcome = o })
	})
	if isDuplicate(err) {
		// A concurrent prepare of one of these transfers committed first.
		return nil, errNotYet
	}
	if err != nil {
		return nil, err
	}
	// Later prepares of an id in the same batch are redeliveries.
	for k, it := range items {
		if it.first >= 0 && it.first != k {
			out[k].Outcome = out[it.first].Outcome
			out[k].Duplicate = true
		}
	}
	return out, nil
}

func sortedIDs(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// position is a locked participantPosition row.
type position struct {
	id, value, reserved, limit int64
	moved                      bool
}

// reserve runs the transaction that records fresh prepares, locks their
// payers' positions and reserves or refuses each in order; set reports
// each one's outcome. The positions stay locked for one round trip and
// the commit only.
func (s *Store) reserve(ctx context.Context, c *sql.Conn, fresh []prepared, payers []int64, set func(j int, o Outcome)) error {
	// Round trip 2: record the transfers (RECEIVED_PREPARE), then lock the
	// payers' positions.
	var q strings.Builder
	args := make([]any, 0, 15*len(fresh)+len(payers))
	q.WriteString("START TRANSACTION; INSERT INTO transfer (transferId, amount, currencyId) VALUES ")
	for j, p := range fresh {
		q.WriteString(sep(j, "(?, ?, ?)"))
		args = append(args, p.TransferID, p.Amount, p.Currency)
	}
	q.WriteString("; INSERT INTO transferParticipant (transferId, participantCurrencyId, transferParticipantRoleTypeId, ledgerEntryTypeId, amount) VALUES ")
	for j, p := range fresh {
		q.WriteString(sep(j, "(?, ?, ?, ?, ?), (?, ?, ?, ?, ?)"))
		args = append(args, p.TransferID, p.payerAcct, rolePayer, entryPrincipal, p.Amount,
			p.TransferID, p.payeeAcct, rolePayee, entryPrincipal, -p.Amount)
	}
	q.WriteString("; INSERT INTO transferStateChange (transferId, transferStateId) VALUES ")
	for j, p := range fresh {
		q.WriteString(sep(j, "(?, ?)"))
		args = append(args, p.TransferID, stateReceivedPrepare)
	}
	pos, err := lockPositions(ctx, c, q.String()+"; ", args, payers, true)
	if err != nil {
		return err
	}

	// Decide in order, each on the position the ones before left.
	q.Reset()
	args = args[:0]
	q.WriteString("INSERT INTO transferStateChange (transferId, transferStateId, reason) VALUES ")
	var moves strings.Builder
	var moveArgs []any
	for j, p := range fresh {
		pp, ok := pos[p.payerAcct]
		if !ok {
			return fmt.Errorf("payer position of account %d: %w", p.payerAcct, sql.ErrNoRows)
		}
		if pp.value+pp.reserved+p.Amount > pp.limit {
			q.WriteString(sep(j, "(?, ?, ?)"))
			args = append(args, p.TransferID, stateAbortedRejected, reasonPayerLimit)
			set(j, Outcome{State: wire.StateAborted, Reason: reasonPayerLimit})
			continue
		}
		pp.value += p.Amount
		pp.moved = true
		q.WriteString(sep(j, "(?, ?, NULL)"))
		args = append(args, p.TransferID, stateReserved)
		moves.WriteString(sep(len(moveArgs), positionChangeRow))
		moveArgs = append(moveArgs, pp.id, p.payerAcct, p.TransferID, stateReserved, pp.value, p.Amount, pp.reserved)
		set(j, Outcome{State: wire.StateReserved})
	}
	// Round trip 3: the final state changes, the position changes in the
	// order they happened, the positions, and the commit.
	finish(&q, &args, moves.String(), moveArgs, pos)
	_, err = c.ExecContext(ctx, q.String(), args...)
	return err
}

// positionChangeRow is one participantPositionChange row; its state change
// is found by transfer and state (inserted earlier in the transaction), so
// the row needs no round trip for the id.
const positionChangeRow = `(?, ?, (SELECT MAX(transferStateChangeId) FROM transferStateChange WHERE transferId = ? AND transferStateId = ?), ?, ?, ?)`

// finish appends to a transaction's last round trip the position change
// rows, one UPDATE per moved position, and COMMIT.
func finish(q *strings.Builder, args *[]any, moves string, moveArgs []any, pos map[int64]*position) {
	next := func() {
		if q.Len() > 0 {
			q.WriteString("; ")
		}
	}
	if moves != "" {
		next()
		q.WriteString("INSERT INTO participantPositionChange (participantPositionId, participantCurrencyId, transferStateChangeId, value, `change`, reservedValue) VALUES ")
		q.WriteString(moves)
		*args = append(*args, moveArgs...)
	}
	accts := make([]int64, 0, len(pos))
	for a, p := range pos {
		if p.moved {
			accts = append(accts, a)
		}
	}
	slices.Sort(accts)
	for _, a := range accts {
		next()
		q.WriteString("UPDATE participantPosition SET value = ?, changedDate = CURRENT_TIMESTAMP(3) WHERE participantPositionId = ?")
		*args = append(*args, pos[a].value, pos[a].id)
	}
	next()
	q.WriteString("COMMIT")
}

// lockPositions runs prefix (statements without results, may be empty)
// and then locks the positions of accts, returning them by account.
// Locking one statement in index order makes concurrent batches queue.
func lockPositions(ctx context.Context, c *sql.Conn, prefix string, args []any, accts []int64, withLimit bool) (map[int64]*position, error) {
	limit := "0"
	if withLimit {
		limit = fmt.Sprintf(`(SELECT pl.value FROM participantLimit pl WHERE pl.participantCurrencyId = pp.participantCurrencyId
			AND pl.participantLimitTypeId = %d AND pl.isActive)`, limitNetDebitCap)
	}
	q := prefix + `SELECT pp.participantCurrencyId, pp.participantPositionId, pp.value, pp.reservedValue, ` + limit + `
		FROM participantPosition pp WHERE pp.participantCurrencyId IN (` + marks(len(accts)) + `)
		ORDER BY pp.participantCurrencyId FOR UPDATE`
	for _, a := range accts {
		args = append(args, a)
	}
	pos := map[int64]*position{}
	err := queryRows(ctx, c, q, args, func(r *sql.Rows) error {
		var acct int64
		var lim sql.NullInt64
		p := &position{}
		if err := r.Scan(&acct, &p.id, &p.value, &p.reserved, &lim); err != nil {
			return err
		}
		if withLimit && !lim.Valid {
			return fmt.Errorf("ledger: account %d has no active net debit cap", acct)
		}
		p.limit = lim.Int64
		pos[acct] = p
		return nil
	})
	return pos, err
}

// queryRows runs a query of one or more statements and scans the rows of
// every result set (statements without one, like START TRANSACTION or an
// INSERT, are skipped); an error in any statement is returned.
func queryRows(ctx context.Context, c *sql.Conn, q string, args []any, scan func(*sql.Rows) error) error {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for {
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// marks is n comma-separated placeholders.
func marks(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// sep prefixes all but the first of a list's elements with a comma.
func sep(i int, s string) string {
	if i == 0 {
		return s
	}
	return ", " + s
}
