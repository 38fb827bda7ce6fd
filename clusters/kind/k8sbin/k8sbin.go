// Package k8sbin builds what a Kubernetes node runs — kubelet, kubeadm,
// kubectl, the control-plane components, etcd, CoreDNS, crictl and pause —
// from Go modules and the C source inside the kubernetes module, since no release
// download and no image registry is reachable here. Each component is
// built in a module of its own under the cache (never the project's
// go.mod: Kubernetes pins its own k8s.io/* versions), in a directory named
// by a hash of its inputs, so a second Build finds it and builds nothing.
package k8sbin

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// The versions kubeadm 1.34 expects (cmd/kubeadm/app/constants).
const (
	KubernetesVersion = "v1.34.4"
	EtcdVersion       = "3.6.5"
	CoreDNSVersion    = "1.12.1"
	PauseVersion      = "3.10.1"
	CrictlVersion     = "1.34.0" // sigs.k8s.io/cri-tools, of the same minor
)

// KubernetesCommands are the k8s.io/kubernetes/cmd/NAME binaries built.
var KubernetesCommands = []string{
	"kubelet", "kubeadm", "kubectl",
	"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy",
}

//go:embed buildmod
var buildmod embed.FS

// Binary is one built executable.
type Binary struct {
	Name    string // "kubelet", "etcd", "pause", ...
	Version string
	Path    string
	// Key is the hash of the inputs of the component that built it: images
	// made from the binary are named by it.
	Key string
}

// Set is every binary Build made, by name.
type Set map[string]Binary

// Builder builds the components into Dir.
type Builder struct {
	// Dir holds one directory per component build.
	Dir string
	Log *slog.Logger
	// Progress, when set, is told each component's stage: "cached",
	// "building", "done" or "failed".
	Progress func(step, stage, detail string)
}

// component is one build: files make its build module; build runs in it.
type component struct {
	name, version string
	files         map[string]string // build module file name → content
	recipe        []string          // what build does, hashed into the key
	bins          []string
	hint          string // how long a cold build takes, for the progress line
	build         func(ctx context.Context, b *Builder, src, out string) error
}

// Build builds every component missing from the cache, one at a time (the
// Go build cache is shared, and two cores are busy enough with one).
func (b *Builder) Build(ctx context.Context) (Set, error) {
	return b.each(ctx, func(c component, key string) (string, error) {
		dir, err := b.ensure(ctx, c, key)
		if err != nil {
			b.progress(c.name, "failed", err.Error())
		}
		return dir, err
	})
}

// Planned is the Set Build would return, built or not: what the cache
// should hold (package images prunes the rest).
func (b *Builder) Planned(ctx context.Context) (Set, error) {
	return b.each(ctx, func(c component, key string) (string, error) { return c.dir(b.Dir, key), nil })
}

// Dirs are the component directories of a Set.
func (s Set) Dirs() []string {
	var dirs []string
	for _, bin := range s {
		if d := filepath.Dir(bin.Path); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return dirs
}

func (b *Builder) each(ctx context.Context, dirOf func(c component, key string) (string, error)) (Set, error) {
	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return nil, err
	}
	set := Set{}
	for _, c := range components() {
		key := c.key(goVersion)
		dir, err := dirOf(c, key)
		if err != nil {
			return nil, err
		}
		for _, name := range c.bins {
			set[name] = Binary{Name: name, Version: c.version, Path: filepath.Join(dir, name), Key: key}
		}
	}
	return set, nil
}

func (b *Builder) progress(step, stage, detail string) {
	if b.Progress != nil {
		b.Progress(step, stage, detail)
	}
}

// key hashes everything that decides the component's output.
func (c component) key(goVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s/%s\x00", c.name, c.version, goVersion, runtime.GOOS, runtime.GOARCH)
	names := make([]string, 0, len(c.files))
	for n := range c.files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, c.files[n])
	}
	fmt.Fprintf(h, "%s\x00%s", strings.Join(c.recipe, "\x00"), strings.Join(c.bins, "\x00"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Dir is where a component's build with key lives.
func (c component) dir(root, key string) string {
	return filepath.Join(root, c.name+"-"+c.version+"-"+key)
}

// ensure returns the directory of c's binaries, building them unless a
// complete build with the same key is there. A lock keeps two chaosloops
// from building the same component at once.
func (b *Builder) ensure(ctx context.Context, c component, key string) (string, error) {
	dir := c.dir(b.Dir, key)
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err == nil {
		b.progress(c.name, "cached", c.version)
		return dir, nil
	}
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(b.Dir, "."+c.name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		b.progress(c.name, "cached", c.version)
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	for name, content := range c.files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	b.progress(c.name, "building", c.version+" ("+c.hint+")")
	start := time.Now()
	if err := c.build(ctx, b, src, dir); err != nil {
		return "", fmt.Errorf("build %s %s: %w", c.name, c.version, err)
	}
	took := time.Since(start).Round(time.Second)
	b.Log.Info("built", "component", c.name, "version", c.version, "took", took, "dir", dir)
	b.progress(c.name, "done", fmt.Sprintf("%s built in %s", c.version, took))
	return dir, os.WriteFile(done, []byte(took.String()+"\n"), 0o644)
}

func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// goCmd runs the go command in a build module of its own: no workspace,
// this machine's toolchain, modules resolved and recorded in its go.sum.
func goCmd(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	return cmd
}

func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, install.Tail(out))
	}
	return nil
}

func goEnv(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", name).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("building Kubernetes needs the go command: go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
