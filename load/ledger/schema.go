// Package ledger is the workload's ledger database on MySQL (MariaDB Galera):
// the tables, the participants, and the two transactions of a transfer, all
// modelled on mojaloop/central-ledger.
//
// Tables (central-ledger's names and keys, simplified):
//   - participant, participantCurrency (one POSITION account per DFSP and
//     currency), participantPosition (value, reservedValue) and
//     participantLimit (type NET_DEBIT_CAP).
//   - transfer (transferId VARCHAR(36) primary key: the idempotency key),
//     transferParticipant (PAYER_DFSP and PAYEE_DFSP rows),
//     transferStateChange (RECEIVED_PREPARE, RESERVED, COMMITTED,
//     ABORTED_REJECTED), participantPositionChange (linked to the state change
//     that moved it, with value after and change), transferFulfilment.
//
// Simplifications: amounts are BIGINT minor units instead of DECIMAL(18,4),
// so sums are exact and match the history; no lookup tables for enums (the
// ids are plain columns); no settlement, ILP condition check or expiry;
// transferFulfilmentId is the transfer id, which makes a second fulfilment
// of the same transfer a primary-key conflict (also across Galera members:
// certification aborts one).
//
// Funding model: each DFSP has pre-funded liquidity equal to its net debit
// cap outside the ledger; positions start at 0 and move only through
// transfers (reserve +amount on the payer, commit −amount on the payee,
// abort −amount on the payer), so positions always sum to the amounts of
// transfers still RESERVED. A prepare is refused when the payer's position
// plus the amount would exceed its net debit cap (central-ledger's
// PAYER_LIMIT_ERROR; its liquidity-cover check is the same bound here).
package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// Ids of central-ledger's enumerations, as the columns hold them.
const (
	ledgerAccountPosition = 1 // ledgerAccountType POSITION
	limitNetDebitCap      = 1 // participantLimitType NET_DEBIT_CAP
	rolePayer             = 1 // transferParticipantRoleType PAYER_DFSP
	rolePayee             = 2 // transferParticipantRoleType PAYEE_DFSP
	entryPrincipal        = 1 // ledgerEntryType PRINCIPLE_VALUE

	stateReceivedPrepare = "RECEIVED_PREPARE"
	stateReserved        = "RESERVED"
	stateCommitted       = "COMMITTED"
	stateAbortedRejected = "ABORTED_REJECTED"

	reasonPayerLimit = "PAYER_LIMIT_ERROR"
)

var schema = []string{
	`CREATE TABLE IF NOT EXISTS participant (
		participantId INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		name VARCHAR(256) NOT NULL UNIQUE,
		isActive BOOLEAN NOT NULL DEFAULT TRUE,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS participantCurrency (
		participantCurrencyId INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		participantId INT UNSIGNED NOT NULL,
		currencyId CHAR(3) NOT NULL,
		ledgerAccountTypeId INT UNSIGNED NOT NULL,
		isActive BOOLEAN NOT NULL DEFAULT TRUE,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		UNIQUE KEY (participantId, currencyId, ledgerAccountTypeId),
		FOREIGN KEY (participantId) REFERENCES participant (participantId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS participantPosition (
		participantPositionId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		participantCurrencyId INT UNSIGNED NOT NULL UNIQUE,
		value BIGINT NOT NULL,
		reservedValue BIGINT NOT NULL,
		changedDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		FOREIGN KEY (participantCurrencyId) REFERENCES participantCurrency (participantCurrencyId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS participantLimit (
		participantLimitId INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		participantCurrencyId INT UNSIGNED NOT NULL,
		participantLimitTypeId INT UNSIGNED NOT NULL,
		value BIGINT NOT NULL DEFAULT 0,
		isActive BOOLEAN NOT NULL DEFAULT TRUE,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		UNIQUE KEY (participantCurrencyId, participantLimitTypeId),
		FOREIGN KEY (participantCurrencyId) REFERENCES participantCurrency (participantCurrencyId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS transfer (
		transferId VARCHAR(36) NOT NULL PRIMARY KEY,
		amount BIGINT NOT NULL,
		currencyId CHAR(3) NOT NULL,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS transferParticipant (
		transferParticipantId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		transferId VARCHAR(36) NOT NULL,
		participantCurrencyId INT UNSIGNED NOT NULL,
		transferParticipantRoleTypeId INT UNSIGNED NOT NULL,
		ledgerEntryTypeId INT UNSIGNED NOT NULL,
		amount BIGINT NOT NULL,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		UNIQUE KEY (transferId, transferParticipantRoleTypeId),
		FOREIGN KEY (transferId) REFERENCES transfer (transferId),
		FOREIGN KEY (participantCurrencyId) REFERENCES participantCurrency (participantCurrencyId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS transferStateChange (
		transferStateChangeId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		transferId VARCHAR(36) NOT NULL,
		transferStateId VARCHAR(50) NOT NULL,
		reason VARCHAR(512) NULL,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		KEY (transferId),
		FOREIGN KEY (transferId) REFERENCES transfer (transferId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS participantPositionChange (
		participantPositionChangeId BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		participantPositionId BIGINT UNSIGNED NOT NULL,
		participantCurrencyId INT UNSIGNED NOT NULL,
		transferStateChangeId BIGINT UNSIGNED NOT NULL,
		value BIGINT NOT NULL,
		` + "`change`" + ` BIGINT NOT NULL,
		reservedValue BIGINT NOT NULL,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		FOREIGN KEY (participantPositionId) REFERENCES participantPosition (participantPositionId),
		FOREIGN KEY (transferStateChangeId) REFERENCES transferStateChange (transferStateChangeId)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS transferFulfilment (
		transferFulfilmentId VARCHAR(36) NOT NULL PRIMARY KEY,
		transferId VARCHAR(36) NOT NULL UNIQUE,
		ilpFulfilment VARCHAR(256) NOT NULL,
		completedDate DATETIME(3) NOT NULL,
		isValid BOOLEAN NULL,
		createdDate DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		FOREIGN KEY (transferId) REFERENCES transfer (transferId)
	) ENGINE=InnoDB`,
}

// dataTables are emptied by a reset, children first.
var dataTables = []string{"transferFulfilment", "participantPositionChange", "transferStateChange", "transferParticipant", "transfer"}

// Participants are the DFSPs of the scheme, each with one position account
// in Currency and the same net debit cap.
type Participants struct {
	Names    []string
	Currency string
	// NetDebitCap in minor units.
	NetDebitCap int64
	// Reset empties the transfer tables and sets every position back to 0
	// (a lab reused for a new run).
	Reset bool
}

// DefaultCurrency is ISO 4217's code for "no currency", used for testing.
const DefaultCurrency = "XXX"

// DefaultParticipants are n DFSPs dfsp01.. in XXX with a cap no ordinary run
// reaches (a random walk of positions stays far below it).
func DefaultParticipants(n int) Participants {
	p := Participants{Currency: DefaultCurrency, NetDebitCap: 1_000_000_000_000}
	for i := range n {
		p.Names = append(p.Names, fmt.Sprintf("dfsp%02d", i+1))
	}
	return p
}

// Setup creates the tables when missing and the participants with their
// position (0) and net debit cap; it is idempotent. With p.Reset it also
// empties every transfer table.
func (s *Store) Setup(ctx context.Context, p Participants) error {
	if len(p.Names) < 2 {
		return fmt.Errorf("ledger: need at least 2 participants, have %d", len(p.Names))
	}
	return s.do(ctx, func(ctx context.Context, db *sql.DB) error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, q := range schema {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if p.Reset {
			// DELETE, not TRUNCATE: TRUNCATE refuses tables that are
			// referenced by foreign keys.
			for _, t := range dataTables {
				if _, err := conn.ExecContext(ctx, "DELETE FROM "+t); err != nil {
					return err
				}
			}
			if _, err := conn.ExecContext(ctx, "UPDATE participantPosition SET value = 0, reservedValue = 0"); err != nil {
				return err
			}
		}
		for _, name := range p.Names {
			stmts := []struct {
				q    string
				args []any
			}{
				{"INSERT IGNORE INTO participant (name) VALUES (?)", []any{name}},
				{`INSERT IGNORE INTO participantCurrency (participantId, currencyId, ledgerAccountTypeId)
					SELECT participantId, ?, ? FROM participant WHERE name = ?`, []any{p.Currency, ledgerAccountPosition, name}},
				{`INSERT IGNORE INTO participantPosition (participantCurrencyId, value, reservedValue)
					SELECT participantCurrencyId, 0, 0 FROM participantCurrency pc JOIN participant p USING (participantId)
					WHERE p.name = ? AND pc.currencyId = ? AND pc.ledgerAccountTypeId = ?`, []any{name, p.Currency, ledgerAccountPosition}},
				{`INSERT INTO participantLimit (participantCurrencyId, participantLimitTypeId, value)
					SELECT participantCurrencyId, ?, ? FROM participantCurrency pc JOIN participant p USING (participantId)
					WHERE p.name = ? AND pc.currencyId = ? AND pc.ledgerAccountTypeId = ?
					ON DUPLICATE KEY UPDATE value = VALUES(value)`, []any{limitNetDebitCap, p.NetDebitCap, name, p.Currency, ledgerAccountPosition}},
			}
			for _, st := range stmts {
				if _, err := conn.ExecContext(ctx, st.q, st.args...); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
