package local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab/labtest"
)

// TestConformance runs the provider conformance suite against the local
// lab; the kind and K3S backends run the same suite.
func TestConformance(t *testing.T) {
	enginetest.RequireRoot(t)
	root, ev := labRoot(t)
	opts := local.Options{Root: root, Cache: filepath.Join(os.TempDir(), "chaosloop-test-cache"), Log: enginetest.ProcessLog()}
	name := "conform"
	t.Cleanup(func() {
		ev.Save(filepath.Join(opts.StateDir(name), "logs"), "logs")
		_ = local.DownByName(context.Background(), opts, name)
	})
	labtest.Run(t, labtest.Harness{
		Provider:  local.NewProvider(opts),
		Name:      name,
		Leftovers: func(ctx context.Context, name string) ([]string, error) { return leftovers(opts, name) },
		Crash:     func(t *testing.T, name string, src []byte, sig os.Signal) { crashUp(t, opts, name, src, sig) },
	})
}

// leftovers lists what of a local lab is on the machine: namespaces,
// its cgroup, state, iptables rules and processes run from its state.
func leftovers(opts local.Options, name string) ([]string, error) {
	var out []string
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(ns), "\n") {
		if strings.HasPrefix(l, "cl-"+name+".") {
			out = append(out, "namespace "+strings.Fields(l)[0])
		}
	}
	for _, p := range []string{filepath.Join(netlab.CgroupV2Root, "chaosloop", name), opts.StateDir(name)} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	ipt, _ := exec.Command("iptables-save").Output()
	if strings.Contains(string(ipt), "cl-"+name) {
		out = append(out, "iptables rules of cl-"+name)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err == nil && strings.Contains(string(b), opts.StateDir(name)+"/") {
			out = append(out, fmt.Sprintf("process %s: %.80s", filepath.Base(filepath.Dir(c)), strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	return out, nil
}

// crashUp runs `chaosloop up` on the scenario source and ends it with sig
// once its engines are starting (process records exist).
func crashUp(t *testing.T, opts local.Options, name string, src []byte, sig os.Signal) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "chaosloop")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/chaosloop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	file := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(file, src, 0o644))
	up := exec.Command(bin, "up", file, "--state-dir", opts.Root, "--cache-dir", opts.Cache)
	require.NoError(t, up.Start())
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if recs, _ := proc.List(opts.StateDir(name)); len(recs) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, up.Process.Signal(sig))
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = up.Process.Signal(syscall.SIGKILL)
		<-done
		t.Errorf("chaosloop up did not end within 2 minutes of %v", sig)
	}
}
