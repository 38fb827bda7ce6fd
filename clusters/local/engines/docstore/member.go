package docstore

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// runUser runs Patroni and PostgreSQL: Debian's postgresql-common user,
// the lab host's or the engine image's.
const runUser = "postgres"

// memberFile is one file prepareMember writes.
type memberFile struct {
	path string
	data []byte
	mode os.FileMode
	// postgres: runUser's (Patroni reads it), else root's
	postgres bool
}

// prepareMember creates member i's directories and writes its config on
// its node (c.FS), owned by postgres where PostgreSQL or Patroni write.
func prepareMember(ctx context.Context, c *engines.Cluster, i int) error {
	m := c.Members[i]
	if m.DataDir == "" || m.LogDir == "" {
		return fmt.Errorf("member %s: DataDir and LogDir must be set", m.Name)
	}
	if err := checkSocketPath(c, m); err != nil {
		return err
	}
	secret, err := ensureSecret(ctx, c)
	if err != nil {
		return err
	}
	files, err := memberFiles(c, i, secret)
	if err != nil {
		return err
	}
	p, fs := memberPaths(m), c.FS()
	dirs := []struct {
		path string
		mode os.FileMode
	}{{m.DataDir, 0o755}, {m.LogDir, 0o755}, {p.etcd, 0o700}, {p.ferret, 0o755}, {p.pgData, 0o700}, {p.pgRun, 0o700}}
	for _, d := range dirs {
		if err := fs.MkdirAll(ctx, m, d.path, d.mode); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := fs.WriteFile(ctx, m, f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if c.Remote() {
		return ownRemote(ctx, c, m, files)
	}
	return ownLocal(m, files)
}

// memberFiles are member i's config files: Patroni's, its post-bootstrap
// script and, on a real cluster, FerretDB's password.
func memberFiles(c *engines.Cluster, i int, secret string) ([]memberFile, error) {
	p := memberPaths(c.Members[i])
	cfg, err := patroniConfig(c, i, secret)
	if err != nil {
		return nil, err
	}
	files := []memberFile{
		{p.patroniYAML, cfg, 0o600, true},
		{p.postBootstrap, []byte(postBootstrapScript(c, secret)), 0o700, true},
	}
	if c.Remote() {
		files = append(files, memberFile{p.ferretPass, ferretPassFile(c, secret), 0o600, false})
	}
	return files, nil
}

// checkSocketPath fails when PostgreSQL's unix socket in the member's
// directory would be longer than a unix socket's path may be (107
// bytes): on a real cluster it must be there, where the pod mounts.
func checkSocketPath(c *engines.Cluster, m engines.Member) error {
	sock := filepath.Join(memberPaths(m).pgRun, ".s.PGSQL."+strconv.Itoa(int(m.Port(PostgresPort))))
	if c.Remote() && len(sock) > 107 {
		return fmt.Errorf("%s: PostgreSQL's socket path %s is too long: the member's directory must be shorter", m.Name, sock)
	}
	return nil
}

// ownRemote gives PostgreSQL's directories and Patroni's files to the
// image's postgres user, whatever its number there, by a one-shot
// command on the member's node (chaosloop made them there as root).
func ownRemote(ctx context.Context, c *engines.Cluster, m engines.Member, files []memberFile) error {
	p := memberPaths(m)
	args := []string{runUser + ":" + runUser, "--", p.pgData, p.pgRun}
	for _, f := range files {
		if f.postgres {
			args = append(args, f.path)
		}
	}
	out, err := c.RunOnce(ctx, m, proc.Spec{Name: m.Name + ".chown", Path: "chown", Args: args})
	if err != nil {
		return fmt.Errorf("%s: chown: %v: %s", m.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ownLocal does as ownRemote on this machine, and checks that postgres
// reaches its data dir.
func ownLocal(m engines.Member, files []memberFile) error {
	pg, err := user.Lookup(runUser)
	if err != nil {
		return fmt.Errorf("user postgres (is postgresql-15 installed?): %w", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	p := memberPaths(m)
	if err := os.Chmod(p.etcd, 0o700); err != nil {
		return err
	}
	for _, d := range []string{p.pgData, p.pgRun} {
		if err := os.Chown(d, uid, gid); err != nil {
			return err
		}
	}
	if err := checkTraversable(p.pgData); err != nil {
		return fmt.Errorf("member %s: user postgres cannot reach its data dir: %w", m.Name, err)
	}
	for _, f := range files {
		if !f.postgres {
			continue
		}
		// os.WriteFile keeps an existing file's mode
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
