// Package mysqlrepl reads a MySQL/MariaDB server's replication state the
// same way for every reader: the backends' engines judging their members,
// and the workload waiting for a replica to apply what it was sent.
package mysqlrepl

import (
	"context"
	"database/sql"
)

// ReplicaStatus is SHOW SLAVE STATUS by column name (their number differs
// between versions), nil when the server replicates from nobody. It needs
// the SLAVE MONITOR privilege.
func ReplicaStatus(ctx context.Context, db *sql.DB) (map[string]sql.NullString, error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]sql.NullString, len(cols))
	for i, c := range cols {
		out[c] = vals[i]
	}
	return out, rows.Err()
}
