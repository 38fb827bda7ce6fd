package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func redisName(m engines.Member) string { return m.Name + ".redis" }

func sentinelName(m engines.Member) string { return m.Name + ".sentinel" }

// ProcessNames name member m's processes (their pods on a cluster): its
// redis-server and its Sentinel.
func ProcessNames(m engines.Member) []string { return []string{redisName(m), sentinelName(m)} }

func redisConf(m engines.Member) string { return filepath.Join(m.DataDir, "redis.conf") }

func sentinelConf(m engines.Member) string { return filepath.Join(m.DataDir, "sentinel.conf") }

// sock is in DataDir unless that path is too long for a unix socket
// (108 bytes), then under /run keyed by a hash of DataDir, in a directory
// of redis's own (see galera's socketPath).
func sock(m engines.Member, what string) string {
	p := filepath.Join(m.DataDir, what+".sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(m.DataDir))
	return filepath.Join("/run/chaosloop/redis", hex.EncodeToString(h[:8])+"."+what+".sock")
}

// prepare makes member m's directories on its node.
func prepare(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	for _, d := range ownDirs(c, m) {
		if err := c.FS().MkdirAll(ctx, m, d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// ownDirs are the directories of member m that runUser owns: its data
// and logs, and its sockets' when they are elsewhere. A member on a real
// cluster's node has no sockets (it is reached over TCP).
func ownDirs(c *engines.Cluster, m engines.Member) []string {
	dirs := []string{m.DataDir, m.LogDir}
	if d := filepath.Dir(sock(m, "redis")); !c.Remote() && d != m.DataDir {
		dirs = append(dirs, d)
	}
	return dirs
}

// own gives member m's directories, with the configuration just written
// there, to runUser, whom its redis-server and Sentinel run as (as root
// where the member runs: runUser is the engine's, which chaosloop's
// machine need not share with a cluster's node).
func own(ctx context.Context, c *engines.Cluster, m engines.Member) error {
	dirs := ownDirs(c, m)
	out, err := c.RunOnce(ctx, m, proc.Spec{Name: m.Name + ".chown", Path: "chown",
		Args: append([]string{"-R", runUser + ":" + runUser, "--"}, dirs...)})
	if err != nil {
		return fmt.Errorf("chown %s: %v: %s", strings.Join(dirs, " "), err, out)
	}
	if c.Remote() {
		return nil // chaosloop made the directories there, under its own root
	}
	// A parent directory redis cannot traverse (e.g. a 0700 temp dir) makes
	// redis fail later with a less clear error; say so now.
	if out, err := exec.CommandContext(ctx, "setpriv", "--reuid="+runUser, "--regid="+runUser, "--init-groups", "--",
		"test", "-w", m.DataDir).CombinedOutput(); err != nil {
		return fmt.Errorf("user %s cannot write %s (check the parent directories' permissions): %v %s", runUser, m.DataDir, err, out)
	}
	return nil
}

// bind is what a member's processes listen on: its address, and
// loopback too where a cluster's port-forward lands.
func bind(m engines.Member) string {
	if m.ListenLoopback {
		return m.Addr.String() + " 127.0.0.1"
	}
	return m.Addr.String()
}

// socketConf is the unixsocket lines of a member's config: none on a
// real cluster's node.
func socketConf(c *engines.Cluster, m engines.Member, what string) string {
	if c.Remote() {
		return ""
	}
	return "unixsocket " + sock(m, what) + "\nunixsocketperm 700\n"
}

// writeRedisConf writes the member's config; primary < 0 makes it a
// primary, else a replica of that member. Sentinel rewrites replicaof in this
// file on failovers; chaosloop rewrites the whole file on each start.
func writeRedisConf(ctx context.Context, c *engines.Cluster, m engines.Member, primary int) error {
	a, port := m.Addr.String(), m.Port(Port)
	var b strings.Builder
	fmt.Fprintf(&b, `# written by chaosloop; rewritten on every start
bind %[7]s
bind-source-addr %[1]s
port %[2]d
protected-mode no
%[3]sdaemonize no
dir %[4]s
logfile %[5]s
appendonly yes
appendfsync everysec
save ""
replica-announce-ip %[1]s
replica-announce-port %[2]d
replica-priority %[6]d
`, a, port, socketConf(c, m, "redis"), m.DataDir, filepath.Join(m.LogDir, "redis.log"), replicaPriority, bind(m))
	if primary >= 0 && primary != m.Index {
		p := c.Members[primary]
		fmt.Fprintf(&b, "replicaof %s %d\n", p.Addr, p.Port(Port))
	}
	return c.FS().WriteFile(ctx, m, redisConf(m), []byte(b.String()), 0o644)
}

// writeSentinelConf writes the Sentinel's initial config. Sentinel keeps its
// own state (its id, epochs, known peers and the current primary) in this
// file, so it is written only when missing.
func writeSentinelConf(ctx context.Context, c *engines.Cluster, m engines.Member, primary int) error {
	if ok, err := c.FS().Exists(ctx, m, sentinelConf(m)); ok || err != nil {
		return err
	}
	a, p := m.Addr.String(), c.Members[primary]
	name := MasterName(c)
	conf := fmt.Sprintf(`# written by chaosloop once; Sentinel rewrites it
bind %[12]s
port %[2]d
protected-mode no
%[3]sdaemonize no
dir %[4]s
logfile %[5]s
sentinel announce-ip %[1]s
sentinel announce-port %[2]d
sentinel resolve-hostnames no
sentinel monitor %[6]s %[7]s %[8]d %[9]d
sentinel down-after-milliseconds %[6]s %[10]d
sentinel failover-timeout %[6]s %[11]d
sentinel parallel-syncs %[6]s 1
`, a, m.Port(SentinelPort), socketConf(c, m, "sentinel"), m.DataDir, filepath.Join(m.LogDir, "sentinel.log"),
		name, p.Addr, p.Port(Port), len(c.Members)/2+1, DownAfter.Milliseconds(), FailoverTimeout.Milliseconds(), bind(m))
	return c.FS().WriteFile(ctx, m, sentinelConf(m), []byte(conf), 0o644)
}
