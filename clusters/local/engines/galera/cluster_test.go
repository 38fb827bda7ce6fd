package galera

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/mariadb"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// runner stands for a real cluster's pods (orchestration only): it
// records the one-shot commands and runs no process.
type runner struct {
	ran []proc.Spec
	// then is what a command does to the nodes' files
	then func(spec proc.Spec)
}

func (r *runner) Start(context.Context, engines.Member, proc.Spec) (string, error) { return "", nil }
func (r *runner) Alive(context.Context, string) bool                               { return false }
func (r *runner) Signal(context.Context, string, syscall.Signal) error             { return nil }
func (r *runner) Stop(context.Context, string, time.Duration) error                { return nil }
func (r *runner) Run(_ context.Context, _ engines.Member, spec proc.Spec) ([]byte, error) {
	r.ran = append(r.ran, spec)
	if r.then != nil {
		r.then(spec)
	}
	return nil, nil
}

// On a real cluster's nodes a member listens at its ports plus the
// offset, its clients' also on loopback (the port-forward's); its files
// are the node's, written through the cluster's Files and given to
// mysql by a one-shot command there; the workload password is kept on
// every member's node; root's SQL goes through a root-only file, never a
// command line; a crashed member's position is read from the log its
// --wsrep-recover wrote on its node.
func TestOnACluster(t *testing.T) {
	c, files := enginetest.OnNodes("db", 3)
	r := &runner{}
	c.Launcher = r
	ctx := t.Context()
	m := c.Members[1]
	require.NoError(t, prepare(ctx, c, m))
	cnf := files["n1:"+mariadb.CnfPath(m)]
	for _, want := range []string{
		"\nbind-address = 198.18.0.11,127.0.0.1\nport = 5306\n",
		"\nwsrep_cluster_address = gcomm://198.18.0.10:6567,198.18.0.11:6567,198.18.0.12:6567\n",
		"\nwsrep_node_incoming_address = 198.18.0.11:5306\n",
		"\nwsrep_sst_receive_address = 198.18.0.11:6444\n",
		"gmcast.listen_addr=tcp://198.18.0.11:6567; ist.recv_addr=198.18.0.11:6568;",
		"\nsocket = /var/lib/chaosloop/s/db-1/data/mariadbd.sock\n",
	} {
		assert.Contains(t, cnf, want)
	}
	require.Len(t, r.ran, 1)
	assert.Equal(t, "chown", r.ran[0].Path)
	assert.Equal(t, []string{"-R", "mysql:mysql", m.DataDir, m.LogDir}, r.ran[0].Args)

	e := New(enginetest.Log(t))
	pw, err := e.ensurePassword(ctx, c)
	require.NoError(t, err)
	require.Len(t, pw, 24)
	for i := range c.Members {
		assert.Equal(t, pw+"\n", files[fmt.Sprintf("n%d:/var/lib/chaosloop/s/db-%d/db.galera-password", i, i)])
	}
	// a member whose files a destroy removed gets it again; the others keep theirs
	delete(files, "n2:/var/lib/chaosloop/s/db-2/db.galera-password")
	again, err := mariadb.EnsurePassword(ctx, c, passwordName(c))
	require.NoError(t, err)
	assert.Equal(t, pw, again)
	assert.Equal(t, pw+"\n", files["n2:/var/lib/chaosloop/s/db-2/db.galera-password"])

	r.ran = nil
	require.NoError(t, e.ensureUser(ctx, c, m))
	require.Len(t, r.ran, 1)
	sql := files["n1:/var/lib/chaosloop/s/db-1/data/.root.sql"]
	assert.Contains(t, sql, "IDENTIFIED BY '"+pw+"'")
	assert.Equal(t, "sh", r.ran[0].Path)
	assert.NotContains(t, strings.Join(r.ran[0].Args, " "), pw, "the password is on no command line")
	assert.Contains(t, r.ran[0].Args, "--socket=/var/lib/chaosloop/s/db-1/data/mariadbd.sock")

	// a crashed member: grastate.dat's seqno -1, the position from the
	// last run of --wsrep-recover in its log
	files["n1:/var/lib/chaosloop/s/db-1/data/db/mysql"] = ""
	files["n1:/var/lib/chaosloop/s/db-1/data/db/grastate.dat"] = "# GALERA saved state\nversion: 2.1\nuuid: 6f5c1e1a-0000-0000-0000-000000000001\nseqno: -1\nsafe_to_bootstrap: 0\n"
	logf := "n1:/var/lib/chaosloop/s/db-1/log/wsrep-recover.log"
	files[logf] = "[Note] WSREP: Recovered position: 6f5c1e1a-0000-0000-0000-000000000001:7\n"
	r.then = func(spec proc.Spec) {
		if strings.HasSuffix(spec.Name, ".wsrep-recover") {
			files[logf] += "[Note] WSREP: Recovered position: 6f5c1e1a-0000-0000-0000-000000000001:42\n"
		}
	}
	p, err := e.position(ctx, c, m)
	require.NoError(t, err)
	assert.Equal(t, Position{UUID: "6f5c1e1a-0000-0000-0000-000000000001", Seqno: 42}, p)
	last := r.ran[len(r.ran)-1]
	assert.Equal(t, mariadb.Mariadbd, last.Path)
	assert.Equal(t, mariadb.RunUser, last.User)
	require.NoError(t, markSafeToBootstrap(ctx, c, m))
	assert.Contains(t, files["n1:/var/lib/chaosloop/s/db-1/data/db/grastate.dat"], "\nsafe_to_bootstrap: 1\n")
}
