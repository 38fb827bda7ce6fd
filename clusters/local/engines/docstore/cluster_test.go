package docstore

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// runner stands for a real cluster's pods (orchestration only): it
// records the processes started and the one-shot commands, and runs none.
type runner struct{ started, ran []proc.Spec }

func (r *runner) Start(_ context.Context, _ engines.Member, spec proc.Spec) (string, error) {
	r.started = append(r.started, spec)
	return "pod", nil
}
func (r *runner) Alive(context.Context, string) bool                   { return false }
func (r *runner) Signal(context.Context, string, syscall.Signal) error { return nil }
func (r *runner) Stop(context.Context, string, time.Duration) error    { return nil }
func (r *runner) Run(_ context.Context, _ engines.Member, spec proc.Spec) ([]byte, error) {
	r.ran = append(r.ran, spec)
	return nil, nil
}

// unreachable are files whose node does not answer.
type unreachable struct {
	enginetest.MemFiles
	node string
}

func (u unreachable) ReadFile(ctx context.Context, m engines.Member, p string) ([]byte, error) {
	if m.Node == u.node {
		return nil, errors.New(m.Node + " does not answer")
	}
	return u.MemFiles.ReadFile(ctx, m, p)
}

func patroniYAML(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var y map[string]any
	require.NoError(t, yaml.Unmarshal(b, &y))
	return y
}

// dig is the value at a dotted path of a YAML document ("restapi.listen").
func dig(y map[string]any, path string) any {
	var v any = y
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// argAfter is the argument after flag.
func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// On a real cluster's nodes a member listens at its ports plus the
// offset, its clients' also on loopback (the port-forward's); its files
// are the node's, written through the cluster's Files, PostgreSQL's given
// to the image's postgres user by a one-shot command there; its passwords
// derive from a random secret kept on the members' nodes and are on no
// command line; every path it uses is in its directories; chaosloop
// probes it through the cluster's dialer.
func TestOnACluster(t *testing.T) {
	c, files := enginetest.OnNodes("docs", 3)
	r := &runner{}
	c.Launcher = r
	ctx := t.Context()
	m, p := c.Members[1], memberPaths(c.Members[1])
	e := New(enginetest.Log(t), "/var/cache/chaosloop")
	require.NoError(t, e.Launch(ctx, c, 1))

	y := patroniYAML(t, []byte(files["n1:"+p.patroniYAML]))
	assert.Equal(t, "0.0.0.0:10008", dig(y, "restapi.listen"), "Patroni's REST API binds one address")
	assert.Equal(t, "198.18.0.11:10008", dig(y, "restapi.connect_address"))
	assert.Equal(t, "198.18.0.10:4379,198.18.0.11:4379,198.18.0.12:4379", dig(y, "etcd.hosts"))
	assert.Equal(t, "198.18.0.11,127.0.0.1:7432", dig(y, "postgresql.listen"))
	assert.Equal(t, "198.18.0.11:7432", dig(y, "postgresql.connect_address"))
	assert.Contains(t, dig(y, "postgresql.pg_hba"), "host replication replicator 198.18.0.12/32 scram-sha-256")
	assert.NotContains(t, dig(y, "postgresql.pg_hba"), "host all all 198.18.0.0/15 scram-sha-256")
	for _, k := range []string{"postgresql.data_dir", "postgresql.pgpass", "postgresql.parameters.unix_socket_directories", "bootstrap.post_bootstrap"} {
		assert.True(t, strings.HasPrefix(dig(y, k).(string), m.DataDir+"/"), "%s: %v", k, dig(y, k))
	}

	secretFile := "n1:/var/lib/chaosloop/s/docs-1/docs.docstore-secret"
	secret := strings.TrimSpace(files[secretFile])
	require.Len(t, secret, 48)
	var pws []string
	for _, role := range []string{"postgres", "replication", "ferretdb", "restapi"} {
		pws = append(pws, password(c, secret, role))
	}
	assert.NotEqual(t, "chaosloop-docs-postgres", pws[0])
	assert.Equal(t, pws[0], dig(y, "postgresql.authentication.superuser.password"))
	assert.Equal(t, pws[1], dig(y, "postgresql.authentication.replication.password"))
	assert.Equal(t, pws[3], dig(y, "restapi.authentication.password"))
	assert.Contains(t, files["n1:"+p.postBootstrap], "PASSWORD '"+pws[2]+"'")
	assert.Equal(t, "*:*:ferretdb:ferretdb:"+pws[2]+"\n", files["n1:"+p.ferretPass])
	for k := range files {
		if strings.HasSuffix(k, ".docstore-secret") {
			continue // on every member's node
		}
		assert.True(t, strings.HasPrefix(k, "n1:/var/lib/chaosloop/s/docs-1/"), k)
	}

	require.Len(t, r.ran, 1)
	assert.Equal(t, "chown", r.ran[0].Path)
	assert.Equal(t, []string{"postgres:postgres", "--", p.pgData, p.pgRun, p.patroniYAML, p.postBootstrap}, r.ran[0].Args)

	require.Len(t, r.started, 3)
	etcd, patroni, ferret := r.started[0], r.started[1], r.started[2]
	assert.Equal(t, "http://198.18.0.11:4379,http://127.0.0.1:4379", argAfter(etcd.Args, "--listen-client-urls"))
	assert.Equal(t, "http://198.18.0.11:4379", argAfter(etcd.Args, "--advertise-client-urls"))
	assert.Equal(t, "http://198.18.0.11:4380", argAfter(etcd.Args, "--listen-peer-urls"))
	assert.Equal(t, "docs-0=http://198.18.0.10:4380,docs-1=http://198.18.0.11:4380,docs-2=http://198.18.0.12:4380",
		argAfter(etcd.Args, "--initial-cluster"))
	assert.Equal(t, runUser, patroni.User)
	assert.Equal(t, []string{p.patroniYAML}, patroni.Args)
	assert.Equal(t, "/var/cache/chaosloop/ferretdb/v1.24.2/ferretdb", ferret.Path, "the image's FerretDB, not looked for here")
	assert.Contains(t, ferret.Args, "--listen-addr=0.0.0.0:29017", "FerretDB binds one address")
	assert.Contains(t, ferret.Args, "--debug-addr=198.18.0.11:10088")
	assert.Contains(t, ferret.Args, "--postgresql-url=postgres://ferretdb@198.18.0.10:7432,198.18.0.11:7432,198.18.0.12:7432/ferretdb"+
		"?target_session_attrs=read-write&connect_timeout=3&passfile="+p.ferretPass)
	assert.Equal(t, ProcessNames(m), []string{patroni.Name, etcd.Name, ferret.Name})
	for _, spec := range append(r.started, r.ran...) {
		line := strings.Join(append(spec.Args, spec.Env...), " ")
		for _, pw := range append(pws, secret) {
			assert.NotContains(t, line, pw, "%s: a password on its command line", spec.Name)
		}
		for _, d := range engines.MemberDirs(m, spec) {
			assert.True(t, strings.HasPrefix(d, "/var/lib/chaosloop/s/docs-1/"), "%s mounts %s", spec.Name, d)
		}
	}

	// another member gets the same secret, and so does a member whose
	// files were wiped
	require.NoError(t, prepareMember(ctx, c, 0))
	assert.Equal(t, secret+"\n", files["n0:/var/lib/chaosloop/s/docs-0/docs.docstore-secret"])
	delete(files, secretFile)
	require.NoError(t, prepareMember(ctx, c, 1))
	assert.Equal(t, secret+"\n", files[secretFile])
	// a node that does not answer may hold it: no new one then
	delete(files, secretFile)
	delete(files, "n2:/var/lib/chaosloop/s/docs-2/docs.docstore-secret")
	c.Files = unreachable{MemFiles: files, node: "n0"}
	require.ErrorContains(t, prepareMember(ctx, c, 1), "n0 does not answer")
	c.Files = files

	var dialed []string
	c.Dial = func(_ context.Context, _, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return nil, errors.New("no cluster")
	}
	_, err := patroniGet[patroniNode](ctx, c, m, "/patroni")
	require.Error(t, err)
	require.Error(t, dial(ctx, c, m, FerretDBPort))
	assert.Equal(t, []string{"198.18.0.11:10008", "198.18.0.11:29017"}, dialed)
	assert.Equal(t, "mongodb://198.18.0.11:29017/?directConnection=true", e.Endpoints(c)[1])

	long := c.Members[2]
	long.DataDir = "/var/lib/chaosloop/" + strings.Repeat("s", 80) + "/docs-2/data"
	c.Members[2] = long
	require.ErrorContains(t, prepareMember(ctx, c, 2), "socket path")
}

// In the labs a member keeps its usual ports on its own address, is
// dialled from its network namespace, and runs the FerretDB built here.
func TestInTheLabs(t *testing.T) {
	m := engines.Member{Name: "docs-0", NetNS: "h1", Addr: netip.MustParseAddr("198.18.0.1"), DataDir: "/d", LogDir: "/l"}
	c := &engines.Cluster{Service: "docs", Members: []engines.Member{m}, Launcher: &runner{}}
	assert.Equal(t, nsDialer{ns: "h1"}, dialer(c, m))
	c.Members[0].NetNS = ""
	assert.IsType(t, &net.Dialer{}, dialer(c, c.Members[0]))
	assert.Equal(t, "http://198.18.0.1:2379", etcdListenClientURLs(m))
	assert.Equal(t, "198.18.0.1:27017", bindOne(m, FerretDBPort))
	assert.Equal(t, "198.18.0.1:5432", postgresListen(m))
	s, err := ensureSecret(t.Context(), c)
	require.NoError(t, err)
	assert.Empty(t, s, "the labs' passwords are fixed")
	e := New(enginetest.Log(t), t.TempDir())
	require.ErrorContains(t, e.startFerretDB(t.Context(), c, 0), "FerretDB is not built")
}
