package runner

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Roles come from kinds and pools: in the combined layout the handlers are
// the CORE-HANDLERS service (not bulk-handlers), the client enters through
// the API adapters, the ledger is the central ledger's database.
func TestRolesFromKindsAndPools(t *testing.T) {
	sc, err := scenarios.Parse("../scenarios/combined-pools.yaml")
	require.NoError(t, err)
	r, err := pickRoles(sc)
	require.NoError(t, err)
	require.Equal(t, roles{ledger: "central-ledger-db", kafka: "kafka", redis: "3ppi-auth-redis", docstore: "bulk-db",
		handlers: "central-ledger-handlers", client: "ml-api-adapter"}, r)

	sc, err = scenarios.Parse("../scenarios/quickstart.yaml")
	require.NoError(t, err)
	r, err = pickRoles(sc)
	require.NoError(t, err)
	require.Equal(t, "handlers", r.handlers)
	require.Equal(t, "handlers", r.client, "no adapters: the client enters beside the handlers")

	sc.Services = sc.Services[:1]
	_, err = pickRoles(sc)
	require.ErrorContains(t, err, "cannot carry the transfer workload")
}
