package mariadb_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/load/ledger"
	"github.com/chaosloop/chaosloop/load/wire"
)

// The workload's ledger on async replication: writes go to the primary
// only; with the primary gone none is accepted anywhere (the read-only
// replicas fail its health probe and refuse writes), and once the primary
// is back they resume there; every member ends with the same ledger.
func TestLedgerOnAsyncReplication(t *testing.T) {
	enginetest.RequireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := mariadb.New(log)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Install(ctx); err != nil {
		enginetest.RequireLab(t, "cannot install mariadb: "+err.Error())
	}
	c := enginetest.Cluster(t, "ledger-async", 3, 41)
	enginetest.LogTails(t, c, mariadb.ErrLog)
	require.NoError(t, e.Start(ctx, c))
	var dsns []string
	for i := range c.Members {
		dsn, err := e.DSN(c, i)
		require.NoError(t, err)
		dsns = append(dsns, dsn)
	}
	s, err := ledger.Open(ledger.Options{DSNs: dsns, Log: log, ProbeEvery: 300 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Setup(ctx, ledger.DefaultParticipants(2)))
	prepare := func(id string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		_, err := s.Prepare(ctx, wire.Prepare{TransferID: id, Payer: "dfsp01", Payee: "dfsp02", Amount: 100, Currency: ledger.DefaultCurrency})
		return err
	}
	for i := range 5 {
		require.NoError(t, prepare(fmt.Sprintf("before-%d", i), 10*time.Second))
	}

	enginetest.Kill(t, c.StateDir, mariadb.ProcName(c.Members[0]), 10*time.Second)
	err = prepare("during", 3*time.Second)
	require.Error(t, err, "no member takes writes without the primary")
	t.Logf("write with the primary gone: %v", err)

	require.NoError(t, e.StartMember(ctx, c, 0))
	t0 := time.Now()
	require.NoError(t, prepare("after", 30*time.Second))
	t.Logf("writes back %s after the primary restarted", time.Since(t0).Round(time.Millisecond))

	views := ledger.Digests(ctx, ledger.Options{DSNs: dsns}, "db")
	for _, v := range views {
		require.Empty(t, v.Error)
		require.Equal(t, views[0].Digest, v.Digest, "member %d", v.Member)
	}
	t.Logf("digest on every member: %s", views[0].Digest)
	require.Contains(t, views[0].Digest, "transfer=6/")
}
