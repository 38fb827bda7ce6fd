package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/lab/mysqlrepl"
)

// syncWait makes every read wait until the member applied all writesets
// committed anywhere before it (read-your-writes across members).
var syncWait = map[string]string{"wsrep_sync_wait": "1"}

// ReadFinal fills f's Transfers, Positions and PositionChanges from the
// first member (in o.DSNs order) that answers, reading with
// wsrep_sync_wait=1. A part that cannot be read is left nil and explained in
// f.ReadErrors.
func ReadFinal(ctx context.Context, o Options, f *history.Final) {
	fail := func(err error) {
		if f.ReadErrors == nil {
			f.ReadErrors = map[string]string{}
		}
		for _, part := range []string{"transfers", "positions", "positionChanges"} {
			f.ReadErrors[part] = "ledger: " + err.Error()
		}
		f.Transfers, f.Positions, f.PositionChanges = nil, nil, nil
	}
	var errs []error
	for _, dsn := range o.DSNs {
		db, addr, err := openDB(dsn, o.Dial, syncWait)
		if err != nil {
			fail(err)
			return
		}
		err = readFinal(ctx, db, f)
		db.Close()
		if err == nil {
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	fail(errors.Join(errs...))
}

func readFinal(ctx context.Context, db *sql.DB, f *history.Final) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// One consistent snapshot for all three parts.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck

	transfers := map[string]history.LedgerTransfer{}
	if err := scan(ctx, tx, "SELECT transferId, amount, currencyId FROM transfer", func(r *sql.Rows) error {
		var id, curr string
		var amount int64
		if err := r.Scan(&id, &amount, &curr); err != nil {
			return err
		}
		transfers[id] = history.LedgerTransfer{Rows: 1, Amount: amount, Currency: curr}
		return nil
	}); err != nil {
		return fmt.Errorf("transfers: %w", err)
	}
	if err := scan(ctx, tx, `SELECT tp.transferId, tp.transferParticipantRoleTypeId, p.name FROM transferParticipant tp
		JOIN participantCurrency pc USING (participantCurrencyId) JOIN participant p USING (participantId)`, func(r *sql.Rows) error {
		var id, name string
		var role int
		if err := r.Scan(&id, &role, &name); err != nil {
			return err
		}
		t := transfers[id]
		switch role {
		case rolePayer:
			t.Payer = name
		case rolePayee:
			t.Payee = name
		}
		transfers[id] = t
		return nil
	}); err != nil {
		return fmt.Errorf("transfer participants: %w", err)
	}
	kind := map[int64]string{} // transferStateChangeId → reserve | commit | abort
	if err := scan(ctx, tx, "SELECT transferStateChangeId, transferId, transferStateId FROM transferStateChange ORDER BY transferStateChangeId", func(r *sql.Rows) error {
		var sc int64
		var id, st string
		if err := r.Scan(&sc, &id, &st); err != nil {
			return err
		}
		t := transfers[id]
		t.State = publicState(st)
		transfers[id] = t
		switch {
		case st == stateReserved:
			kind[sc] = "reserve"
		case st == stateCommitted:
			kind[sc] = "commit"
		case strings.HasPrefix(st, "ABORTED") || st == "EXPIRED_RESERVED":
			kind[sc] = "abort"
		}
		return nil
	}); err != nil {
		return fmt.Errorf("transfer states: %w", err)
	}

	positions := []history.Position{}
	if err := scan(ctx, tx, `SELECT p.name, pc.currencyId, pp.value, pp.reservedValue, COALESCE(pl.value, 0)
		FROM participantPosition pp JOIN participantCurrency pc USING (participantCurrencyId)
		JOIN participant p USING (participantId)
		LEFT JOIN participantLimit pl ON pl.participantCurrencyId = pp.participantCurrencyId AND pl.participantLimitTypeId = ? AND pl.isActive
		ORDER BY p.name, pc.currencyId`, func(r *sql.Rows) error {
		var p history.Position
		if err := r.Scan(&p.Participant, &p.Currency, &p.Value, &p.Reserved, &p.NetDebitCap); err != nil {
			return err
		}
		positions = append(positions, p)
		return nil
	}, limitNetDebitCap); err != nil {
		return fmt.Errorf("positions: %w", err)
	}

	changes := []history.PositionChange{}
	if err := scan(ctx, tx, `SELECT p.name, pc.currencyId, tsc.transferId, ppc.transferStateChangeId, ppc.`+"`change`"+`, ppc.value
		FROM participantPositionChange ppc
		JOIN participantCurrency pc ON pc.participantCurrencyId = ppc.participantCurrencyId
		JOIN participant p USING (participantId)
		JOIN transferStateChange tsc ON tsc.transferStateChangeId = ppc.transferStateChangeId
		ORDER BY ppc.participantPositionChangeId`, func(r *sql.Rows) error {
		var c history.PositionChange
		var sc int64
		if err := r.Scan(&c.Participant, &c.Currency, &c.TransferID, &sc, &c.Change, &c.Value); err != nil {
			return err
		}
		c.Kind = kind[sc]
		changes = append(changes, c)
		return nil
	}); err != nil {
		return fmt.Errorf("position changes: %w", err)
	}
	f.Transfers, f.Positions, f.PositionChanges = transfers, positions, changes
	return nil
}

func scan(ctx context.Context, tx *sql.Tx, q string, row func(*sql.Rows) error, args ...any) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// digestQueries summarise each table order-independently: a row count and
// the XOR of a CRC of every row's identifying columns.
var digestQueries = []struct{ name, q string }{
	{"transfer", "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', transferId, amount, currencyId))), 0) FROM transfer"},
	{"transferStateChange", "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', transferStateChangeId, transferId, transferStateId))), 0) FROM transferStateChange"},
	{"participantPositionChange", "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', participantPositionChangeId, participantPositionId, value, `change`))), 0) FROM participantPositionChange"},
	{"participantPosition", "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', participantPositionId, value, reservedValue))), 0) FROM participantPosition"},
	{"transferFulfilment", "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(transferFulfilmentId)), 0) FROM transferFulfilment"},
}

// Digests reads every member's digest of the ledger tables through its own
// DSN (o.DSNs is member order here), with wsrep_sync_wait=1 (Galera) or
// after an async replica applied what it received, so a member still
// applying does not look diverged.
func Digests(ctx context.Context, o Options, service string) []history.ReplicaView {
	out := make([]history.ReplicaView, len(o.DSNs))
	target := primaryPos(ctx, o)
	for i, dsn := range o.DSNs {
		out[i] = history.ReplicaView{Service: service, Member: i}
		d, err := digest(ctx, dsn, o.Dial, target)
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		out[i].Digest = d
	}
	return out
}

func digest(ctx context.Context, dsn string, dial lab.DialFunc, target string) (string, error) {
	db, _, err := openDB(dsn, dial, syncWait)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := waitApplied(ctx, db, target); err != nil {
		return "", err
	}
	var parts []string
	for _, dq := range digestQueries {
		var n, sum int64
		if err := db.QueryRowContext(ctx, dq.q).Scan(&n, &sum); err != nil {
			return "", fmt.Errorf("%s: %w", dq.name, err)
		}
		parts = append(parts, fmt.Sprintf("%s=%d/%08x", dq.name, n, sum))
	}
	return strings.Join(parts, " "), nil
}

// primaryPos is the binary log position (GTID) of the first member that
// takes writes: an async primary's, which its replicas are to reach; ""
// when none answers.
func primaryPos(ctx context.Context, o Options) string {
	for _, dsn := range o.DSNs {
		db, _, err := openDB(dsn, o.Dial, nil)
		if err != nil {
			return ""
		}
		var readOnly bool
		var pos string
		err = db.QueryRowContext(ctx, "SELECT @@global.read_only, @@global.gtid_binlog_pos").Scan(&readOnly, &pos)
		db.Close()
		if err == nil && !readOnly {
			return pos
		}
	}
	return ""
}

// waitApplied waits until an async replica (read_only, replicating) has
// applied target, the primary's position (or, if that is unknown, what it
// received from it); other members return at once.
func waitApplied(ctx context.Context, db *sql.DB, target string) error {
	var readOnly bool
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil || !readOnly {
		return err
	}
	st, err := mysqlrepl.ReplicaStatus(ctx, db)
	if err != nil || st == nil {
		return err
	}
	if target == "" {
		target = st["Gtid_IO_Pos"].String
	}
	secs := 30
	if d, ok := ctx.Deadline(); ok {
		secs = max(1, min(secs, int(time.Until(d).Seconds())))
	}
	var res sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", target, secs).Scan(&res); err != nil {
		return err
	}
	if res.Int64 != 0 {
		return fmt.Errorf("replica did not apply %s within %d s", target, secs)
	}
	return nil
}
