package local_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	out = append(out, labtest.ProcessesUnder(opts.StateDir(name))...)
	return out, nil
}

// crashUp runs `chaosloop up` on the scenario source and ends it with sig
// once its engines are starting (process records exist).
func crashUp(t *testing.T, opts local.Options, name string, src []byte, sig os.Signal) {
	labtest.CrashCLI(t, "../../cmd/chaosloop", name, src, sig, 90*time.Second, func() bool {
		recs, _ := proc.List(opts.StateDir(name))
		return len(recs) >= 2
	}, "--state-dir", opts.Root, "--cache-dir", opts.Cache)
}
