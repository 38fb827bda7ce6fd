// Package docker gives the kind backend a container engine it can rely on:
// Debian's docker.io, installed on first use; the daemon that answers on
// the default socket, or else a dockerd that chaosloop starts itself with
// a configuration of its own (addresses inside 198.18.0.0/15, no IPv6, and
// a default OCI runtime that copes with this VM's capability bounding set).
// Stop ends only a daemon chaosloop started, by the PID it recorded.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// Packages are the Debian packages of the container engine (dockerd,
// containerd, runc and the docker CLI).
var Packages = []string{"docker.io"}

// DefaultStateDir is where the state of a dockerd chaosloop starts lives.
const DefaultStateDir = "/var/lib/chaosloop/docker"

// Socket is where the daemon answers (the default the docker CLI and kind
// use, so they need no DOCKER_HOST).
const Socket = "/var/run/docker.sock"

// The addresses of a daemon chaosloop starts: the default bridge and the
// pool new networks (kind's among them) take their subnets from.
const (
	BridgeIP    = "198.19.250.1/24"
	AddressPool = "198.19.240.0/20"
	PoolSize    = 24
)

// Pool is AddressPool as a prefix.
func Pool() netip.Prefix { return netip.MustParsePrefix(AddressPool) }

// RuntimeName is the name the OCI runtime wrapper is registered under.
const RuntimeName = "chaosloop"

// EnsureInstalled installs docker.io when it is missing.
func EnsureInstalled(ctx context.Context, log *slog.Logger) error {
	return install.Apt(ctx, log, Packages...)
}

// Daemon is the Docker daemon the kind backend uses.
type Daemon struct {
	// StateDir holds daemon.json, the PID of a dockerd chaosloop started,
	// its log and (under data/) its images and containers.
	StateDir string
	// Runtime is the OCI runtime wrapper: an absolute path and the
	// arguments that select it (the chaosloop binary and "oci-runtime").
	Runtime []string
	Log     *slog.Logger
}

// Ensure returns once a daemon answers on Socket: one already running
// (started says false), or a dockerd it starts and records.
func (d *Daemon) Ensure(ctx context.Context) (started bool, err error) {
	if Ping(ctx) == nil {
		return false, nil
	}
	conf, err := d.prepare()
	if err != nil {
		return false, err
	}
	logf, err := os.OpenFile(filepath.Join(d.StateDir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer logf.Close()
	// dockerd sets the FORWARD policy of the host's iptables to DROP; Stop
	// puts back what it was.
	if pol := forwardPolicy(ctx); pol != "" {
		if err := os.WriteFile(d.policyFile(), []byte(pol+"\n"), 0o644); err != nil {
			return false, err
		}
	}
	// Its own session: the daemon outlives this chaosloop (the next one,
	// or down --all, stops it) and a Ctrl-C here does not reach it.
	cmd := exec.Command("dockerd", "--config-file", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start dockerd (is %s installed?): %w", strings.Join(Packages, " "), err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(d.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return false, err
	}
	if err := waitAnswer(ctx, exited); err != nil {
		return true, fmt.Errorf("dockerd (pid %d, log %s): %w", pid, logf.Name(), err)
	}
	d.Log.Info("dockerd started", "pid", pid, "took", time.Since(start).Round(time.Millisecond), "config", conf)
	return true, nil
}

// prepare writes the daemon's configuration and a copy of the runtime
// wrapper into StateDir: the daemon outlives this chaosloop, whose binary
// may be a temporary one (go run, a test) or be replaced.
func (d *Daemon) prepare() (conf string, err error) {
	if len(d.Runtime) == 0 || !filepath.IsAbs(d.Runtime[0]) {
		return "", fmt.Errorf("starting dockerd: the OCI runtime wrapper needs an absolute path, got %q", d.Runtime)
	}
	if err := os.MkdirAll(d.StateDir, 0o755); err != nil {
		return "", err
	}
	exe := filepath.Join(d.StateDir, "oci-runtime")
	if err := copyExecutable(d.Runtime[0], exe); err != nil {
		return "", fmt.Errorf("copy the OCI runtime wrapper: %w", err)
	}
	b, err := json.MarshalIndent(d.config(exe), "", "  ")
	if err != nil {
		return "", err
	}
	conf = filepath.Join(d.StateDir, "daemon.json")
	return conf, os.WriteFile(conf, b, 0o644)
}

// copyExecutable copies src to dst by a rename, so a process running dst
// keeps its file.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// waitAnswer polls the socket until the daemon answers, exits, or 60 s pass.
func waitAnswer(ctx context.Context, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before it answered: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("did not answer on %s: %w", Socket, ctx.Err())
		case <-tick.C:
			if Ping(ctx) == nil {
				return nil
			}
		}
	}
}

// config is the daemon.json of a dockerd chaosloop starts, whose OCI
// runtime wrapper is at exe.
func (d *Daemon) config(exe string) map[string]any {
	rt := map[string]any{"path": exe}
	if len(d.Runtime) > 1 {
		rt["runtimeArgs"] = d.Runtime[1:]
	}
	return map[string]any{
		"bip":                   BridgeIP,
		"default-address-pools": []map[string]any{{"base": AddressPool, "size": PoolSize}},
		"ipv6":                  false,
		"ip6tables":             false,
		"userland-proxy":        false,
		"data-root":             filepath.Join(d.StateDir, "data"),
		"exec-root":             filepath.Join(d.StateDir, "run"),
		"pidfile":               filepath.Join(d.StateDir, "run", "docker.pid"),
		"runtimes":              map[string]any{RuntimeName: rt},
		"default-runtime":       RuntimeName,
	}
}

func (d *Daemon) pidFile() string { return filepath.Join(d.StateDir, "dockerd.pid") }

// Started returns the PID of a dockerd chaosloop started that still runs.
func (d *Daemon) Started() (int, bool) {
	b, err := os.ReadFile(d.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// A recycled PID is not our daemon.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "dockerd" {
		return 0, false
	}
	return pid, true
}

// Stop stops the dockerd chaosloop started (TERM, then KILL after 30 s)
// and forgets it; a daemon chaosloop did not start is left alone.
func (d *Daemon) Stop(ctx context.Context) error {
	pid, ok := d.Started()
	if !ok {
		d.restoreForwardPolicy(ctx) // a daemon of ours that died by itself
		os.Remove(d.pidFile())
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop dockerd %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			d.Log.Warn("dockerd did not stop on TERM; killing it", "pid", pid)
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // it may be gone already
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	d.Log.Info("dockerd stopped", "pid", pid)
	d.restoreForwardPolicy(ctx)
	return os.Remove(d.pidFile())
}

func (d *Daemon) policyFile() string { return filepath.Join(d.StateDir, "forward-policy") }

// restoreForwardPolicy puts back the FORWARD policy from before dockerd.
func (d *Daemon) restoreForwardPolicy(ctx context.Context) {
	b, err := os.ReadFile(d.policyFile())
	if err != nil {
		return
	}
	os.Remove(d.policyFile())
	was := strings.TrimSpace(string(b))
	if now := forwardPolicy(ctx); now == "" || now == was {
		return
	}
	if out, err := exec.CommandContext(ctx, "iptables", "-P", "FORWARD", was).CombinedOutput(); err != nil {
		d.Log.Warn("cannot restore the FORWARD policy dockerd changed", "to", was, "err", err, "output", string(out))
		return
	}
	d.Log.Info("restored the host's iptables FORWARD policy", "to", was)
}

// forwardPolicy is the policy of the host's iptables FORWARD chain, "" if
// it cannot be read.
func forwardPolicy(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "iptables", "-S", "FORWARD").Output()
	if err != nil {
		return ""
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if pol, ok := strings.CutPrefix(first, "-P FORWARD "); ok {
		return strings.TrimSpace(pol)
	}
	return ""
}

// Ping asks the daemon on Socket whether it answers.
func Ping(ctx context.Context) error {
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", Socket)
	}}}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docker daemon answered %s", resp.Status)
	}
	return nil
}
