// Package docstore runs the lab's document store: the scenario's `mongodb`
// services. No MongoDB server can be installed on the lab machines, so each
// service is FerretDB v1.24.2 (the MongoDB wire protocol) over a
// Patroni-managed PostgreSQL 15 trio with synchronous replication, with etcd
// (v2 API) as Patroni's store. Every member host runs one etcd, one Patroni
// (managing one PostgreSQL) and one FerretDB; on a real cluster (deploy
// mode) each of them is a pod on its member's node, from the engine's image.
package docstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// Pinned versions (Debian 12 apt-cache policy; FerretDB module tag).
const (
	FerretDBVersion = "v1.24.2"
	FerretDBModule  = "github.com/FerretDB/FerretDB"
	pgBinDir        = "/usr/lib/postgresql/15/bin"
)

// Packages are pinned to the versions measured in lab-facts. patroni's
// `etcd:` store needs python3-etcd (the v2 client); psql runs post_bootstrap.
var Packages = []string{
	"postgresql-15=15.18-0+deb12u1",
	"postgresql-client-15=15.18-0+deb12u1",
	"patroni=3.0.2-1",
	"python3-etcd=0.4.5-4",
	"etcd-server=3.4.23-4+b4",
}

// Engine runs docstore services on the local lab.
type Engine struct {
	log      *slog.Logger
	cacheDir string
}

// New returns an engine that keeps its FerretDB build under cacheDir
// ("" = the user cache dir's chaosloop/).
func New(log *slog.Logger, cacheDir string) *Engine {
	if cacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "chaosloop")
		} else {
			cacheDir = filepath.Join(os.TempDir(), "chaosloop-cache")
		}
	}
	return &Engine{log: log, cacheDir: cacheDir}
}

// FerretDBPath is where Install puts the FerretDB binary.
func (e *Engine) FerretDBPath() string {
	return filepath.Join(e.cacheDir, "ferretdb", FerretDBVersion, "ferretdb")
}

// Install installs the Debian packages, disables Debian's default cluster
// and builds FerretDB into the cache dir; each step is skipped when done.
func (e *Engine) Install(ctx context.Context) error {
	start := time.Now()
	if err := aptInstall(ctx, e.log, Packages...); err != nil {
		return err
	}
	// Debian's postgresql-common creates a "main" cluster on port 5432; the
	// lab's PostgreSQLs are Patroni's alone.
	if err := disableDefaultCluster(); err != nil {
		return err
	}
	aptDone := time.Now()
	if err := e.BuildFerretDB(ctx); err != nil {
		return err
	}
	e.log.Info("docstore installed", "apt", aptDone.Sub(start).Round(time.Millisecond),
		"ferretdb", time.Since(aptDone).Round(time.Millisecond))
	return nil
}

// aptInstall retries while another apt-get (outside this process) holds the
// dpkg lock: install.Apt serialises only this process's runs.
func aptInstall(ctx context.Context, log *slog.Logger, pkgs ...string) error {
	var err error
	for range 30 {
		if err = install.Apt(ctx, log, pkgs...); err == nil || !strings.Contains(err.Error(), "lock") {
			return err
		}
		log.Info("dpkg is locked by another apt-get; waiting")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	return err
}

func disableDefaultCluster() error {
	matches, _ := filepath.Glob("/etc/postgresql/15/*/start.conf")
	for _, p := range matches {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "\ndisabled") || strings.HasPrefix(string(b), "disabled") {
			continue
		}
		if err := os.WriteFile(p, []byte("disabled\n"), 0o644); err != nil {
			return fmt.Errorf("disable Debian's default PostgreSQL cluster: %w", err)
		}
	}
	return nil
}

// BuildFerretDB builds FerretDB from its module source into FerretDBPath
// unless it is there. A plain `go install` gives a binary that panics at
// start (build/version/version.txt is not in the module), so the source
// is copied and the file written first.
func (e *Engine) BuildFerretDB(ctx context.Context) error {
	bin := e.FerretDBPath()
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Two chaosloops building at once would race on the same output.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building FerretDB needs the go command: %w", err)
	}
	e.log.Info("building FerretDB", "version", FerretDBVersion, "into", bin)
	goEnv := append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	install.Step(ctx, "go mod download "+FerretDBModule+"@"+FerretDBVersion)
	cmd := exec.CommandContext(ctx, goBin, "mod", "download", "-json", FerretDBModule+"@"+FerretDBVersion)
	cmd.Env = goEnv
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w %s", FerretDBModule, err, stderrOf(err))
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("go mod download %s: %v %s", FerretDBModule, err, mod.Error)
	}
	src, err := os.MkdirTemp(dir, "src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return fmt.Errorf("copy FerretDB source: %w", err)
	}
	// The module cache is read-only; the copy keeps those modes.
	if err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "build", "version", "version.txt"), []byte(FerretDBVersion+"\n"), 0o644); err != nil {
		return err
	}
	tmp := bin + ".tmp"
	install.Step(ctx, "go build FerretDB "+FerretDBVersion+" (1-3 min on 2 cores)")
	cmd = exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", tmp, "./cmd/ferretdb")
	cmd.Env = goEnv
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build FerretDB: %w\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, tmp, "--version").Output()
	if err != nil || !bytes.Contains(out, []byte("version: "+FerretDBVersion)) {
		return fmt.Errorf("built FerretDB does not report %s: %v %q", FerretDBVersion, err, out)
	}
	return os.Rename(tmp, bin)
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

var (
	pgVersionRe      = regexp.MustCompile(`PostgreSQL\) (\S+)`)
	ferretVersionRe  = regexp.MustCompile(`version: (\S+)`)
	patroniVersionRe = regexp.MustCompile(`patroni (\S+)`)
	etcdVersionRe    = regexp.MustCompile(`etcd Version: (\S+)`)
)

// Version names the stack, including that FerretDB stands in for MongoDB.
func (e *Engine) Version(ctx context.Context) (string, error) {
	get := func(re *regexp.Regexp, name string, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		m := re.FindSubmatch(out)
		if m == nil {
			return "", fmt.Errorf("%s: unexpected version output %q", name, out)
		}
		return string(m[1]), nil
	}
	ferret, err := get(ferretVersionRe, e.FerretDBPath(), "--version")
	if err != nil {
		return "", err
	}
	pg, err := get(pgVersionRe, filepath.Join(pgBinDir, "postgres"), "-V")
	if err != nil {
		return "", err
	}
	patroni, err := get(patroniVersionRe, "patroni", "--version")
	if err != nil {
		return "", err
	}
	etcd, err := get(etcdVersionRe, "etcd", "--version")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("FerretDB %s (MongoDB wire protocol, substitutes for MongoDB) on PostgreSQL %s (Patroni %s, etcd %s, synchronous replication)",
		ferret, pg, patroni, etcd), nil
}
