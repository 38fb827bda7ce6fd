package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

func redisName(m engines.Member) string { return m.Name + ".redis" }

func sentinelName(m engines.Member) string { return m.Name + ".sentinel" }

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

func prepare(ctx context.Context, m engines.Member) error {
	for _, d := range []string{m.DataDir, m.LogDir, filepath.Dir(sock(m, "redis"))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, "chown", "-R", runUser+":"+runUser, m.DataDir, m.LogDir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s: %v: %s", m.DataDir, err, out)
	}
	if d := filepath.Dir(sock(m, "redis")); d != m.DataDir {
		if out, err := exec.CommandContext(ctx, "chown", runUser+":"+runUser, d).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", d, err, out)
		}
	}
	// A parent directory redis cannot traverse (e.g. a 0700 temp dir) makes
	// redis fail later with a less clear error; say so now.
	if out, err := exec.CommandContext(ctx, "setpriv", "--reuid="+runUser, "--regid="+runUser, "--init-groups", "--",
		"test", "-w", m.DataDir).CombinedOutput(); err != nil {
		return fmt.Errorf("user %s cannot write %s (check the parent directories' permissions): %v %s", runUser, m.DataDir, err, out)
	}
	return nil
}

// writeRedisConf writes the member's config; primary < 0 makes it a
// primary, else a replica of that member. Sentinel rewrites replicaof in this
// file on failovers; chaosloop rewrites the whole file on each start.
func writeRedisConf(c *engines.Cluster, m engines.Member, primary int) error {
	a := m.Addr.String()
	var b strings.Builder
	fmt.Fprintf(&b, `# written by chaosloop; rewritten on every start
bind %[1]s
bind-source-addr %[1]s
port %[2]d
protected-mode no
unixsocket %[3]s
unixsocketperm 700
daemonize no
dir %[4]s
logfile %[5]s
appendonly yes
appendfsync everysec
save ""
replica-announce-ip %[1]s
replica-announce-port %[2]d
replica-priority %[6]d
`, a, Port, sock(m, "redis"), m.DataDir, filepath.Join(m.LogDir, "redis.log"), replicaPriority)
	if primary >= 0 && primary != m.Index {
		fmt.Fprintf(&b, "replicaof %s %d\n", c.Members[primary].Addr, Port)
	}
	return writeOwned(redisConf(m), b.String())
}

// writeSentinelConf writes the Sentinel's initial config. Sentinel keeps its
// own state (its id, epochs, known peers and the current primary) in this
// file, so it is written only when missing.
func writeSentinelConf(c *engines.Cluster, m engines.Member, primary int) error {
	if _, err := os.Stat(sentinelConf(m)); err == nil {
		return nil
	}
	a := m.Addr.String()
	name := MasterName(c)
	conf := fmt.Sprintf(`# written by chaosloop once; Sentinel rewrites it
bind %[1]s
port %[2]d
protected-mode no
unixsocket %[3]s
unixsocketperm 700
daemonize no
dir %[4]s
logfile %[5]s
sentinel announce-ip %[1]s
sentinel announce-port %[2]d
sentinel resolve-hostnames no
sentinel monitor %[6]s %[7]s %[8]d %[9]d
sentinel down-after-milliseconds %[6]s %[10]d
sentinel failover-timeout %[6]s %[11]d
sentinel parallel-syncs %[6]s 1
`, a, SentinelPort, sock(m, "sentinel"), m.DataDir, filepath.Join(m.LogDir, "sentinel.log"),
		name, c.Members[primary].Addr, Port, len(c.Members)/2+1, DownAfter.Milliseconds(), FailoverTimeout.Milliseconds())
	return writeOwned(sentinelConf(m), conf)
}

func writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Lchown(path, userID(), groupID())
}

func userID() int { return lookupID("-u") }

func groupID() int { return lookupID("-g") }

func lookupID(flag string) int {
	out, err := exec.Command("id", flag, runUser).Output()
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return -1
	}
	return n
}
