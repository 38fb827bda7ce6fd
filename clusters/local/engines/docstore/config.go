package docstore

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// Ports on each member's address. Members have their own addresses (lab
// hosts, or distinct loopback addresses in tests), so the usual ports do not
// collide; on one address these five differ from one another.
const (
	EtcdClientPort  = 2379
	EtcdPeerPort    = 2380
	PostgresPort    = 5432
	PatroniPort     = 8008
	FerretDBPort    = 27017
	ferretDebugPort = 8088
)

// Lab-only credentials: the lab is on loopback or namespaces the lab owns.
const (
	ferretUser = "ferretdb"
	ferretDB   = "ferretdb"
	replUser   = "replicator"
)

func password(c *engines.Cluster, role string) string {
	return "chaosloop-" + c.Service + "-" + role
}

func hostPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}

// Paths of one member's files.
type paths struct {
	etcd, pgData, pgRun, ferret  string
	patroniYAML, postBootstrap   string
	pgpass                       string
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
		etcdLog:       filepath.Join(m.LogDir, "etcd.log"),
		patroniLog:    filepath.Join(m.LogDir, "patroni.log"),
		ferrLog:       filepath.Join(m.LogDir, "ferretdb.log"),
	}
}

// FerretDBURL is the PostgreSQL URL a FerretDB uses: all members, so that
// with target_session_attrs=read-write it follows Patroni's failovers.
func FerretDBURL(c *engines.Cluster) string {
	hosts := make([]string, len(c.Members))
	for i, m := range c.Members {
		hosts[i] = hostPort(m.Addr, PostgresPort)
	}
	return fmt.Sprintf("postgres://%s:%s@%s/%s?target_session_attrs=read-write&connect_timeout=3",
		ferretUser, password(c, "ferretdb"), strings.Join(hosts, ","), ferretDB)
}

// patroniConfig is Patroni's YAML for member i. The DCS settings are those
// that lost no acknowledged write in lab-facts' partition and kill runs.
func patroniConfig(c *engines.Cluster, i int) ([]byte, error) {
	m := c.Members[i]
	p := memberPaths(m)
	etcdHosts := make([]string, len(c.Members))
	for j, o := range c.Members {
		etcdHosts[j] = hostPort(o.Addr, EtcdClientPort)
	}
	var hba []string
	for _, db := range []string{"replication " + replUser, "all all"} {
		for _, cidr := range []string{"127.0.0.0/8", "198.18.0.0/15"} {
			hba = append(hba, fmt.Sprintf("host %s %s scram-sha-256", db, cidr))
		}
	}
	hba = append([]string{"local all postgres peer"}, hba...)
	cfg := map[string]any{
		"scope":     c.Service,
		"namespace": "/chaosloop/",
		"name":      m.Name,
		"log":       map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen":          hostPort(m.Addr, PatroniPort),
			"connect_address": hostPort(m.Addr, PatroniPort),
		},
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
			"listen":          hostPort(m.Addr, PostgresPort),
			"connect_address": hostPort(m.Addr, PostgresPort),
			"data_dir":        p.pgData,
			"bin_dir":         pgBinDir,
			"pgpass":          p.pgpass,
			"pg_hba":          hba,
			// A replica clones with pg_basebackup, whose default spread
			// checkpoint made the first start take ~2 minutes.
			"basebackup": []any{map[string]any{"checkpoint": "fast"}},
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": "postgres", "password": password(c, "postgres")},
				"replication": map[string]any{"username": replUser, "password": password(c, "replication")},
			},
			// Several PostgreSQLs share one machine in tests: each needs its
			// own socket directory (they all use port 5432).
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
func postBootstrapScript(c *engines.Cluster) string {
	return fmt.Sprintf(`#!/bin/sh
set -e
%s/psql "$1" -v ON_ERROR_STOP=1 -c "CREATE ROLE %s LOGIN PASSWORD '%s'" -c "CREATE DATABASE %s OWNER %s"
`, pgBinDir, ferretUser, password(c, "ferretdb"), ferretDB, ferretUser)
}

// prepareMember writes member i's config and creates its directories,
// owned by postgres where PostgreSQL or Patroni write.
func prepareMember(c *engines.Cluster, i int) error {
	m := c.Members[i]
	if m.DataDir == "" || m.LogDir == "" {
		return fmt.Errorf("member %s: DataDir and LogDir must be set", m.Name)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("user postgres (is postgresql-15 installed?): %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	p := memberPaths(m)
	for _, d := range []string{m.DataDir, m.LogDir, p.etcd, p.ferret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(p.etcd, 0o700); err != nil {
		return err
	}
	for _, d := range []string{p.pgData, p.pgRun} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return err
		}
	}
	if err := checkTraversable(p.pgData); err != nil {
		return fmt.Errorf("member %s: user postgres cannot reach its data dir: %w", m.Name, err)
	}
	cfg, err := patroniConfig(c, i)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{p.patroniYAML, cfg, 0o600},
		{p.postBootstrap, []byte(postBootstrapScript(c)), 0o700},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return err
		}
		if err := os.Chown(f.path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// checkTraversable fails when a parent of dir is closed to others (e.g. a
// 0700 temp dir of root's), which PostgreSQL would only report in its log.
func checkTraversable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s has mode %s (needs o+x)", d, st.Mode().Perm())
		}
		if d == "/" || d == "." {
			return nil
		}
	}
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
