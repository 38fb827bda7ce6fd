package kind_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind"
	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/kind/kindtest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab/labtest"
)

func TestMain(m *testing.M) { kindtest.Main(m) }

// TestConformance runs the provider conformance suite against the kind
// backend: up (twice), status, every fault on the Raft service (here the
// cluster's own etcd and API servers on its three control-plane nodes),
// down, and a CLI killed part-way followed by down.
func TestConformance(t *testing.T) {
	kindtest.Daemon(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	ev := enginetest.NewEvidence(t)
	root := ev.WorkDir("lab")
	opts := kind.Options{Root: root, Cache: filepath.Dir(kindtest.Cache), Log: enginetest.ProcessLog(),
		Runtime: []string{exe, kindtest.RuntimeArg}, DockerStateDir: kindtest.StateDir}
	p := kind.NewProvider(opts)
	name := "kconform"
	t.Cleanup(func() {
		if t.Failed() {
			// the nodes' logs, before down removes them
			if err := cluster.CollectLogs(enginetest.ProcessLog(), kindlab.ClusterPrefix+name, ev.Sub("kind-logs")); err != nil {
				t.Logf("kind logs: %v", err)
			}
		}
		ev.Save(filepath.Join(root, name, "logs"), "logs")
		_ = p.Down(context.Background(), name)
	})
	labtest.Run(t, labtest.Harness{
		Provider:  p,
		Name:      name,
		Leftovers: func(ctx context.Context, name string) ([]string, error) { return leftovers(ctx, root, name) },
		Crash: func(t *testing.T, name string, src []byte, sig os.Signal) {
			crashUp(t, root, opts.Cache, name, src, sig)
		},
	})
}

// leftovers lists what of a kind lab is on the machine: its node
// containers, its namespaces, its state, processes run from its state.
func leftovers(ctx context.Context, root, name string) ([]string, error) {
	var out []string
	ids, err := docker.Run(ctx, "ps", "--all", "--quiet", "--filter", "label="+cluster.ClusterLabel+"="+kindlab.ClusterPrefix+name)
	if err != nil {
		return nil, err
	}
	for _, id := range strings.Fields(string(ids)) {
		out = append(out, "container "+id)
	}
	ns, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(ns), "\n") {
		if strings.HasPrefix(l, kindlab.NSPrefix+name+".") {
			out = append(out, "namespace "+strings.Fields(l)[0])
		}
	}
	dir := filepath.Join(root, name)
	if _, err := os.Stat(dir); err == nil {
		out = append(out, dir)
	}
	ipt, _ := exec.Command("iptables-save").Output()
	if strings.Contains(string(ipt), kindlab.NSPrefix+name) {
		out = append(out, "iptables rules of "+kindlab.NSPrefix+name)
	}
	out = append(out, labtest.ProcessesUnder(dir)...)
	return out, nil
}

// crashUp runs `chaosloop up --on kind` and ends it with sig once the
// cluster's node containers exist.
func crashUp(t *testing.T, root, cache, name string, src []byte, sig os.Signal) {
	labtest.CrashCLI(t, "../../cmd/chaosloop", name, src, sig, 5*time.Minute, func() bool {
		ids, _ := docker.Run(context.Background(), "ps", "--quiet", "--filter", "label="+cluster.ClusterLabel+"="+kindlab.ClusterPrefix+name)
		return len(strings.Fields(string(ids))) > 0
	}, "--on", "kind", "--state-dir", root, "--cache-dir", cache)
}
