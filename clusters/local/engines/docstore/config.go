package docstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Ports on each member's address (plus its PortOffset). Members have their
// own addresses (lab hosts, distinct loopback addresses in tests, a
// cluster's nodes), so the usual ports do not collide; on one address
// these six differ from one another.
const (
	EtcdClientPort    = 2379
	EtcdPeerPort      = 2380
	PostgresPort      = 5432
	PatroniPort       = 8008
	FerretDBPort      = 27017
	FerretDBDebugPort = 8088
)

const (
	ferretUser = "ferretdb"
	ferretDB   = "ferretdb"
	replUser   = "replicator"
	// restUser may change Patroni's state through its REST API
	restUser = "chaosloop"
)

// password is a role's password. The labs' are fixed (the lab is on
// loopback or namespaces the lab owns); on a real cluster's nodes, where
// PostgreSQL listens on the nodes' own addresses, they derive from the
// service's random secret (ensureSecret).
func password(c *engines.Cluster, secret, role string) string {
	if secret == "" {
		return "chaosloop-" + c.Service + "-" + role
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(role))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// loopback listens at member m's port p too, for a cluster's port-forward
// (Member.ListenLoopback); a member on a loopback address needs none.
func loopback(m engines.Member) bool { return m.ListenLoopback && !m.Addr.IsLoopback() }

// bindOne is where a process that binds a single address (Patroni's REST
// API, FerretDB) listens at port p: its member's address, or all of
// them when it must take the port-forward's connections on loopback too.
func bindOne(m engines.Member, p uint16) string {
	if !loopback(m) {
		return m.AddrPort(p).String()
	}
	anyAddr := netip.IPv4Unspecified()
	if m.Addr.Is6() {
		anyAddr = netip.IPv6Unspecified()
	}
	return netip.AddrPortFrom(anyAddr, m.Port(p)).String()
}

// Paths of one member's files.
type paths struct {
	etcd, pgData, pgRun, ferret  string
	patroniYAML, postBootstrap   string
	pgpass, ferretPass           string
	etcdLog, patroniLog, ferrLog string
}

func memberPaths(m engines.Member) paths {
	return paths{
		etcd:          filepath.Join(m.DataDir, "etcd"),
		pgData:        filepath.Join(m.DataDir, "pg"),
		pgRun:         filepath.Join(m.DataDir, "pgrun"),
		ferret:        filepath.Join(m.DataDir, "ferretdb"),
		patroniYAML:   filepath.Join(m.DataDir, "patroni.yml"),
		postBootstrap: filepath.Join(m.DataDir, "post-bootstrap.sh"),
		pgpass:        filepath.Join(m.DataDir, "pgrun", "pgpass"),
		ferretPass:    filepath.Join(m.DataDir, "ferretdb", "pgpass"),
		etcdLog:       filepath.Join(m.LogDir, "etcd.log"),
		patroniLog:    filepath.Join(m.LogDir, "patroni.log"),
		ferrLog:       filepath.Join(m.LogDir, "ferretdb.log"),
	}
}

// FerretDBURL is the PostgreSQL URL member m's FerretDB uses: all members,
// so that with target_session_attrs=read-write it follows Patroni's
// failovers. On a real cluster its password is in a file on m's node
// (ferretPassFile), not on FerretDB's command line, which its pod's spec
// shows.
func FerretDBURL(c *engines.Cluster, m engines.Member) string {
	hosts := make([]string, len(c.Members))
	for i, o := range c.Members {
		hosts[i] = o.AddrPort(PostgresPort).String()
	}
	auth, extra := ferretUser+":"+password(c, "", "ferretdb"), ""
	if c.Remote() {
		auth, extra = ferretUser, "&passfile="+memberPaths(m).ferretPass
	}
	return fmt.Sprintf("postgres://%s@%s/%s?target_session_attrs=read-write&connect_timeout=3%s",
		auth, strings.Join(hosts, ","), ferretDB, extra)
}

// ferretPassFile is the pgpass file of FerretDB's password on a real
// cluster's node.
func ferretPassFile(c *engines.Cluster, secret string) []byte {
	return []byte(fmt.Sprintf("*:*:%s:%s:%s\n", ferretDB, ferretUser, password(c, secret, "ferretdb")))
}

// hbaSources are where PostgreSQL takes its roles' connections from:
// loopback and the members, the lab's whole range there, on a real
// cluster each member's node address (its processes connect from it).
func hbaSources(c *engines.Cluster) []string {
	out := []string{"127.0.0.0/8"}
	if !c.Remote() {
		return append(out, "198.18.0.0/15")
	}
	for _, m := range c.Members {
		out = append(out, netip.PrefixFrom(m.Addr, m.Addr.BitLen()).String())
	}
	return out
}

// postgresListen is Patroni's postgresql.listen: member m's address, and
// loopback when it must (Patroni takes a comma-separated list).
func postgresListen(m engines.Member) string {
	if loopback(m) {
		return fmt.Sprintf("%s,127.0.0.1:%d", m.Addr, m.Port(PostgresPort))
	}
	return m.AddrPort(PostgresPort).String()
}

// restAPI is Patroni's restapi section. Its REST API binds one address:
// all of them when it must take a port-forward's connections on loopback
// too, its state-changing calls then behind a password.
func restAPI(c *engines.Cluster, m engines.Member, secret string) map[string]any {
	api := map[string]any{
		"listen":          bindOne(m, PatroniPort),
		"connect_address": m.AddrPort(PatroniPort).String(),
	}
	if secret != "" {
		api["authentication"] = map[string]any{"username": restUser, "password": password(c, secret, "restapi")}
	}
	return api
}

// patroniConfig is Patroni's YAML for member i. The DCS settings are those
// that lost no acknowledged write in lab-facts' partition and kill runs.
func patroniConfig(c *engines.Cluster, i int, secret string) ([]byte, error) {
	m := c.Members[i]
	p := memberPaths(m)
	etcdHosts := make([]string, len(c.Members))
	for j, o := range c.Members {
		etcdHosts[j] = o.AddrPort(EtcdClientPort).String()
	}
	var hba []string
	for _, db := range []string{"replication " + replUser, "all all"} {
		for _, cidr := range hbaSources(c) {
			hba = append(hba, fmt.Sprintf("host %s %s scram-sha-256", db, cidr))
		}
	}
	hba = append([]string{"local all postgres peer"}, hba...)
	cfg := map[string]any{
		"scope":     c.Service,
		"namespace": "/chaosloop/",
		"name":      m.Name,
		"log":       map[string]any{"level": "INFO"},
		"restapi":   restAPI(c, m, secret),
		// `etcd:` is the v2 store. With `etcd3:` Patroni 3.0.2 let an old
		// leader retake leadership after a partition (22k writes lost).
		"etcd": map[string]any{
			"hosts":    strings.Join(etcdHosts, ","),
			"protocol": "http",
		},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     int(PatroniTTL.Seconds()),
				"loop_wait":               int(PatroniLoopWait.Seconds()),
				"retry_timeout":           int(PatroniRetryTimeout.Seconds()),
				"maximum_lag_on_failover": 1 << 20,
				"synchronous_mode":        true,
				"synchronous_mode_strict": true,
				"synchronous_node_count":  1,
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters": map[string]any{
						// The default 60 s leaves a partitioned old
						// leader stuck "shutting down".
						"wal_sender_timeout":    "10s",
						"wal_log_hints":         "on",
						"wal_level":             "replica",
						"hot_standby":           "on",
						"max_wal_senders":       10,
						"max_replication_slots": 10,
						"wal_keep_size":         "128MB",
						"shared_buffers":        "64MB",
						"max_connections":       100,
					},
				},
			},
			"initdb":         []any{map[string]any{"encoding": "UTF8"}, "data-checksums"},
			"post_bootstrap": p.postBootstrap,
		},
		"postgresql": map[string]any{
			"listen":          postgresListen(m),
			"connect_address": m.AddrPort(PostgresPort).String(),
			"data_dir":        p.pgData,
			"bin_dir":         pgBinDir,
			"pgpass":          p.pgpass,
			"pg_hba":          hba,
			// A replica clones with pg_basebackup, whose default spread
			// checkpoint made the first start take ~2 minutes.
			"basebackup": []any{map[string]any{"checkpoint": "fast"}},
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": "postgres", "password": password(c, secret, "postgres")},
				"replication": map[string]any{"username": replUser, "password": password(c, secret, "replication")},
			},
			// Several PostgreSQLs share one machine in tests: each needs its
			// own socket directory (they all use port 5432). It is in the
			// member's directory, which a cluster's pod mounts.
			"parameters": map[string]any{
				"unix_socket_directories": p.pgRun,
			},
			// A rejoining old leader whose rewind fails re-clones instead
			// of staying out of the cluster.
			"remove_data_directory_on_rewind_failure":     true,
			"remove_data_directory_on_diverged_timelines": true,
		},
		"tags": map[string]any{
			"nofailover":    false,
			"noloadbalance": false,
			"clonefrom":     false,
			"nosync":        false,
		},
	}
	return yaml.Marshal(cfg)
}

// postBootstrapScript creates FerretDB's role and database once, on the
// bootstrapping leader (Patroni passes the superuser's connection URL).
func postBootstrapScript(c *engines.Cluster, secret string) string {
	return fmt.Sprintf(`#!/bin/sh
set -e
%s/psql "$1" -v ON_ERROR_STOP=1 -c "CREATE ROLE %s LOGIN PASSWORD '%s'" -c "CREATE DATABASE %s OWNER %s"
`, pgBinDir, ferretUser, password(c, secret, "ferretdb"), ferretDB, ferretUser)
}

// Patroni timing (bootstrap.dcs): the leader key expires PatroniTTL after
// the leader's last renewal; replicas look every PatroniLoopWait; DCS and
// PostgreSQL calls are retried for PatroniRetryTimeout.
const (
	PatroniTTL          = 10 * time.Second
	PatroniLoopWait     = 2 * time.Second
	PatroniRetryTimeout = 3 * time.Second
)

// FailoverBudget: ttl + loop_wait + retry_timeout bounds how long a lost
// leader keeps the key and a replica takes to notice and promote, plus
// margin.
func FailoverBudget() engines.Budget {
	raw := PatroniTTL + PatroniLoopWait + PatroniRetryTimeout
	return engines.WithMargin(raw, fmt.Sprintf("Patroni ttl %s + loop_wait %s + retry_timeout %s = %s", PatroniTTL, PatroniLoopWait, PatroniRetryTimeout, raw))
}
