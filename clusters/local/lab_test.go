package local_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/lab/labtest"
	"github.com/chaosloop/chaosloop/scenarios"
)

// labRoot is a state root the engines' own users (mysql, redis, postgres)
// can traverse (t.TempDir's parents are private to root), in the test's
// evidence directory: kept when the test fails, with the path printed.
func labRoot(t *testing.T) (string, *enginetest.Evidence) {
	t.Helper()
	ev := enginetest.NewEvidence(t)
	return ev.WorkDir("lab"), ev
}

// labScenario: three sites; site a has two racks so that a rack can be cut
// off; one member of each service per site.
func labScenario(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	src := fmt.Sprintf(`name: %s
sites:
  - name: a
    racks:
      - {name: r1, power: [a-p1], switches: [a-s1], nodes: [{name: a1, pools: [P]}]}
      - {name: r2, power: [a-p2], switches: [a-s2], nodes: [{name: a2, pools: [Q]}]}
  - {name: b, racks: [{name: r1, power: [b-p], switches: [b-s], nodes: [{name: b1, pools: [P, Q]}]}]}
  - {name: c, racks: [{name: r1, power: [c-p], switches: [c-s], nodes: [{name: c1, pools: [P]}]}]}
services:
  - {name: etcd, kind: etcd, pool: P, spread: site}
  - {name: db, kind: mysql, pool: P, spread: site}
  - {name: cache, kind: redis, pool: P, spread: site}
  - {name: kafka, kind: kafka, pool: P, spread: site, partitions: 3}
`, name)
	s, err := scenarios.Decode(name+".yaml", []byte(src))
	require.NoError(t, err)
	d := s.WithDefaults()
	require.NoError(t, d.Validate())
	return d
}

func member(t *testing.T, l *local.Lab, service string, i int) lab.Member {
	t.Helper()
	si, err := l.ServiceStatus(context.Background(), service)
	require.NoError(t, err)
	return si.Members[i]
}

// assertGone checks that nothing of a lab is left on the machine.
func assertGone(t *testing.T, opts local.Options, name string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	require.NotContains(t, string(out), "cl-"+name+".", "namespaces left")
	_, err = os.Stat(filepath.Join(netlab.CgroupV2Root, "chaosloop", name))
	require.True(t, os.IsNotExist(err), "cgroup left")
	_, err = os.Stat(opts.StateDir(name))
	require.True(t, os.IsNotExist(err), "state left")
	ipt, _ := exec.Command("iptables-save").Output()
	require.NotContains(t, string(ipt), "cl-"+name, "iptables rules left")
}

func TestLabFaultsAreReal(t *testing.T) {
	enginetest.RequireRoot(t)
	ctx := context.Background()
	root, ev := labRoot(t)
	opts := local.Options{Root: root, Cache: filepath.Join(os.TempDir(), "chaosloop-test-cache"), Log: enginetest.ProcessLog()}
	name := "labfaults"
	sc := labScenario(t, name)
	_ = local.DownByName(ctx, opts, name)
	start := time.Now()
	l, err := local.Up(ctx, opts, sc)
	t.Cleanup(func() {
		// Down deletes the lab's state, its engine logs included.
		ev.Save(filepath.Join(opts.StateDir(name), "logs"), "logs")
		if l != nil {
			_ = l.Down(context.Background())
		}
	})
	require.NoError(t, err)
	t.Logf("up in %s", time.Since(start))
	require.NoError(t, labtest.AllHealthy(context.Background(), l))

	// Up again reuses the running lab.
	l2, err := local.Up(ctx, opts, sc)
	require.NoError(t, err)
	require.NoError(t, labtest.AllHealthy(context.Background(), l2))

	t.Run("power-off kills the node's members", func(t *testing.T) {
		f := lab.Fault{Action: "power-off", Target: "node/a1"}
		_, err := l.Inject(ctx, f)
		require.NoError(t, err)
		_, err = l.Inject(ctx, f) // idempotent
		require.NoError(t, err)
		require.Len(t, l.ActiveFaults(), 1)
		require.False(t, member(t, l, "etcd", 0).Up, "etcd member unreachable")
		labtest.Eventually(t, 30*time.Second, "galera cluster size 2", func() error {
			m := member(t, l, "db", 1)
			if !strings.Contains(m.Detail, "size=2") || !m.Healthy {
				return fmt.Errorf("%s", m.Detail)
			}
			return nil
		})
		labtest.Eventually(t, 30*time.Second, "redis fails over", func() error {
			for _, i := range []int{1, 2} {
				if member(t, l, "cache", i).Role == "primary" {
					return nil
				}
			}
			return fmt.Errorf("no new primary")
		})
		labtest.Eventually(t, 30*time.Second, "kafka ISR shrinks", func() error {
			ps, err := l.KafkaPartitions(ctx, "kafka")
			if err != nil {
				return err
			}
			for _, p := range ps {
				if len(p.ISR) != 2 || slices.Contains(p.ISR, 1) {
					return fmt.Errorf("%s/%d ISR %v", p.Topic, p.Partition, p.ISR)
				}
			}
			return nil
		})
		require.NoError(t, l.Recover(ctx, f))
		require.NoError(t, l.Recover(ctx, f)) // idempotent
		labtest.Eventually(t, 120*time.Second, "every member rejoins", func() error { return labtest.AllHealthy(context.Background(), l) })
		labtest.Eventually(t, 60*time.Second, "kafka ISR full again", func() error {
			ps, err := l.KafkaPartitions(ctx, "kafka")
			if err != nil {
				return err
			}
			for _, p := range ps {
				if len(p.ISR) != 3 {
					return fmt.Errorf("%s/%d ISR %v", p.Topic, p.Partition, p.ISR)
				}
			}
			return nil
		})
	})

	t.Run("isolating a rack partitions", func(t *testing.T) {
		f := lab.Fault{Action: "isolate", Target: "rack/a/r1"}
		_, err := l.Inject(ctx, f)
		require.NoError(t, err)
		labtest.Eventually(t, 30*time.Second, "galera member 0 non-Primary", func() error {
			m := member(t, l, "db", 0)
			if m.Role != "non-primary" {
				return fmt.Errorf("%s: %s", m.Role, m.Detail)
			}
			return nil
		})
		require.True(t, member(t, l, "etcd", 0).Up, "isolated, not dead")
		require.NoError(t, l.Recover(ctx, f))
		labtest.Eventually(t, 90*time.Second, "every member rejoins", func() error { return labtest.AllHealthy(context.Background(), l) })
	})

	t.Run("latency delays", func(t *testing.T) {
		rtt := func() time.Duration {
			h, ok := l.Net().Host("b1")
			require.True(t, ok)
			ln, err := l.Net().Listen(ctx, "b1", "tcp", net.JoinHostPort(h.Addr.String(), "0"))
			require.NoError(t, err)
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			best := time.Hour
			for range 5 {
				s := time.Now()
				c, err := l.Net().Dial(ctx, "a2", "tcp", ln.Addr().String())
				require.NoError(t, err)
				best = min(best, time.Since(s))
				c.Close()
			}
			return best
		}
		base := rtt()
		f := lab.Fault{Action: "latency", Target: "link/a/b", Delay: 30 * time.Millisecond}
		_, err := l.Inject(ctx, f)
		require.NoError(t, err)
		slow := rtt()
		require.NoError(t, l.Recover(ctx, f))
		after := rtt()
		t.Logf("TCP connect a2->b1: %s before, %s with 30ms on link a-b, %s after", base, slow, after)
		require.GreaterOrEqual(t, slow-base, 25*time.Millisecond, "a 30 ms delay on the link shows in the handshake")
		require.Less(t, after, base+20*time.Millisecond, "recovered")
	})

	require.NoError(t, l.Down(ctx))
	l = nil
	assertGone(t, opts, name)
}

// TestDownAfterCrash: kill -9 of chaosloop while it brings a lab up, then
// `chaosloop down` leaves no namespace, process, cgroup or rule behind.
func TestDownAfterCrash(t *testing.T) {
	enginetest.RequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "chaosloop")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/chaosloop")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	name := "crashlab"
	sc := labScenario(t, name)
	file := filepath.Join(dir, "crash.yaml")
	require.NoError(t, writeScenario(file, sc))
	root, _ := labRoot(t)
	opts := local.Options{Root: root, Log: enginetest.ProcessLog()}

	up := exec.Command(bin, "up", file, "--state-dir", root, "--cache-dir", filepath.Join(os.TempDir(), "chaosloop-test-cache"))
	up.Stdout, up.Stderr = io.Discard, io.Discard
	require.NoError(t, up.Start())
	// Wait until engines are starting (process records exist), then crash.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		recs, _ := proc.List(opts.StateDir(name))
		if len(recs) >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, up.Process.Signal(syscall.SIGKILL))
	_ = up.Wait()
	recs, err := proc.List(opts.StateDir(name))
	require.NoError(t, err)
	require.NotEmpty(t, recs, "engines were starting when chaosloop died")

	down := exec.Command(bin, "down", name, "--state-dir", root)
	out, err = down.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, r := range recs {
		require.False(t, r.Alive(), "%s (pid %d) still runs", r.Name, r.PID)
	}
	assertGone(t, opts, name)
}

func writeScenario(path string, sc *scenarios.Scenario) error {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nsites:\n", sc.Name)
	for _, s := range sc.Sites {
		fmt.Fprintf(&b, "  - name: %s\n    racks:\n", s.Name)
		for _, r := range s.Racks {
			fmt.Fprintf(&b, "      - {name: %s, power: [%s], switches: [%s], nodes: [", r.Name, strings.Join(r.Power, ", "), strings.Join(r.Switches, ", "))
			for i, n := range r.Nodes {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "{name: %s, pools: [%s]}", n.Name, strings.Join(n.Pools, ", "))
			}
			b.WriteString("]}\n")
		}
	}
	b.WriteString("services:\n")
	for _, sv := range sc.Services {
		fmt.Fprintf(&b, "  - {name: %s, kind: %s, pool: %s, spread: %s}\n", sv.Name, sv.Kind, sv.Pool, sv.Spread)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
