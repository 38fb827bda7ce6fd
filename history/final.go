package history

import (
	"encoding/json"
	"os"
)

// Final is the state read from the engines after the run healed and
// converged: what the checkers compare the history with. It is saved as
// final-state.json beside history.jsonl.
type Final struct {
	// Transfers in the ledger database (modelled on central-ledger's
	// transfer, transferParticipant and transferStateChange tables), by id.
	Transfers map[string]LedgerTransfer `json:"transfers"`
	// Positions per participant and currency.
	Positions []Position `json:"positions"`
	// PositionChanges: every participantPositionChange row, in order.
	PositionChanges []PositionChange `json:"positionChanges"`
	// Bulk transfers found in the document store, by id.
	Bulk map[string]bool `json:"bulk"`
	// RedisKeys: acknowledged duplicate-check keys still readable, by id.
	RedisKeys map[string]bool `json:"redisKeys"`
	// Replicas: per replicated service, each member's view after heal.
	Replicas []ReplicaView `json:"replicas"`
	// ReadErrors: parts of the final state that could not be read (the
	// checks depending on them report UNKNOWN).
	ReadErrors map[string]string `json:"readErrors,omitempty"`
}

// LedgerTransfer is one transfer as the ledger holds it.
type LedgerTransfer struct {
	State    string `json:"state"` // RECEIVED | RESERVED | COMMITTED | ABORTED
	Rows     int    `json:"rows"`  // transfer rows with this id (1 unless duplicated)
	Payer    string `json:"payer"`
	Payee    string `json:"payee"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Position is a participant's net position in one currency.
type Position struct {
	Participant string `json:"participant"`
	Currency    string `json:"currency"`
	Value       int64  `json:"value"`
	Reserved    int64  `json:"reserved"`
	NetDebitCap int64  `json:"netDebitCap"`
}

// PositionChange is one row of participantPositionChange.
type PositionChange struct {
	Participant string `json:"participant"`
	Currency    string `json:"currency"`
	TransferID  string `json:"transferId"`
	Kind        string `json:"kind"` // reserve | commit | abort
	Change      int64  `json:"change"`
	Value       int64  `json:"value"` // position after the change
}

// ReplicaView is one member's digest of a replicated service's data.
type ReplicaView struct {
	Service string `json:"service"`
	Member  int    `json:"member"`
	// Digest summarises the member's data (row counts and checksums,
	// replication offset); members converged when digests are equal.
	Digest string `json:"digest"`
	Error  string `json:"error,omitempty"`
}

// WriteFinal saves a final state as indented JSON.
func WriteFinal(path string, f *Final) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadFinal loads a final state.
func ReadFinal(path string) (*Final, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &Final{}
	return f, json.Unmarshal(b, f)
}
