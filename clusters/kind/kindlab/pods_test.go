package kindlab_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
)

// memberPods runs a Redis+Sentinel service as pods of the two-sites
// cluster c (state under dir) through the redis engine's own code (the
// same Start, Status and StartMember as on the local lab, with
// kindlab.Pods as its launcher): every member healthy on its lab
// address; SIGKILL to the primary's redis-server in its node shows it
// down in the engine's status, Sentinel fails over to another member,
// and starting the member again brings it back as a replica. It shares
// the cluster of TestScenarioCluster's two-sites: a cluster of its own
// cost minutes of the kind suite's time on a 2-core CI machine.
func memberPods(t *testing.T, c *kindlab.Cluster, dir string, built *images.Built) {
	log := enginetest.Log(t)
	eng := redis.New(log)
	// the engine prepares a member's files on the host as user redis
	enginetest.RequireInstalled(t, eng.Install, "redis-server")
	ctx := context.Background()
	pods := &kindlab.Pods{Cluster: c, Image: built.Engines["redis"], Service: "cache"}
	start := time.Now()
	require.NoError(t, pods.Prepare(ctx))
	t.Logf("redis image in every node in %s", time.Since(start).Round(time.Second))
	cl := memberCluster(t, c, dir, pods)
	start = time.Now()
	require.NoError(t, eng.Start(ctx, cl))
	t.Logf("redis service started as pods in %s", time.Since(start).Round(time.Second))
	t.Logf("pods:\n%s", kubectl(t, c, "get", "pods", "--namespace", kindlab.Namespace, "--output", "wide"))
	for _, m := range cl.Members {
		node := kubectl(t, c, "get", "pod", kindlab.PodName(m.Name+".redis"), "--namespace", kindlab.Namespace,
			"--output", "jsonpath={.spec.nodeName} {.status.podIP}")
		require.Equal(t, m.Node+" "+m.Addr.String(), node, "pinned to its node, on its lab address")
	}
	start = time.Now()
	st := status(t, eng, cl)
	t.Logf("one status (the engine's probes, each process's liveness from its node) in %s", time.Since(start).Round(time.Millisecond))
	require.True(t, st.Writable, st.Summary())
	primary := -1
	for i, ms := range st.Members {
		require.True(t, ms.Up && ms.Healthy, st.Summary())
		if ms.Role == "primary" {
			primary = i
		}
	}
	require.GreaterOrEqual(t, primary, 0, st.Summary())

	killed := time.Now()
	name := cl.Members[primary].Name + ".redis"
	require.NoError(t, pods.Signal(ctx, name, syscall.SIGKILL))
	require.NoError(t, engines.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, "killed member down", func(ctx context.Context) error {
		if st := status(t, eng, cl); st.Members[primary].Up {
			return fmt.Errorf("still up: %s", st.Summary())
		}
		return nil
	}))
	t.Logf("SIGKILL → member %d down in the engine's status after %s", primary, time.Since(killed).Round(time.Millisecond))
	// the status saw the member refuse; its process's end shows in the
	// next scan of /proc (at most scanEvery after the last)
	require.NoError(t, engines.WaitFor(ctx, 10*time.Second, 100*time.Millisecond, "killed process not alive", func(ctx context.Context) error {
		if pods.Alive(ctx, name) {
			return errors.New("still alive")
		}
		return nil
	}))
	require.NoError(t, engines.WaitFor(ctx, 2*time.Minute, time.Second, "failover", func(ctx context.Context) error {
		st := status(t, eng, cl)
		for i, ms := range st.Members {
			if i != primary && ms.Role == "primary" && st.Writable {
				return nil
			}
		}
		return fmt.Errorf("no new primary: %s", st.Summary())
	}))
	t.Logf("SIGKILL → Sentinel's new primary writable after %s", time.Since(killed).Round(time.Millisecond))

	start = time.Now()
	require.NoError(t, eng.StartMember(ctx, cl, primary))
	require.NoError(t, engines.WaitFor(ctx, 2*time.Minute, time.Second, "member back", func(ctx context.Context) error {
		st := status(t, eng, cl)
		if ms := st.Members[primary]; !ms.Up || !ms.Healthy || ms.Role != "replica" {
			return fmt.Errorf("not back as a replica: %s", st.Summary())
		}
		return nil
	}))
	t.Logf("member %d back as a replica in %s", primary, time.Since(start).Round(time.Millisecond))
	stats(t, c)
	start = time.Now()
	require.NoError(t, eng.Stop(ctx, cl))
	require.Empty(t, kubectl(t, c, "get", "pods", "--namespace", kindlab.Namespace, "--output", "name"))
	t.Logf("stopped (pods deleted) in %s", time.Since(start).Round(time.Millisecond))
	// the namespace and the Service go too: the cluster is used as a real
	// one next, where chaosloop's namespace is the one its own objects
	// make, and down keeps a namespace it did not make
	out, err := c.Kubectl(ctx, nil, "delete", "namespace", kindlab.Namespace, "--timeout=2m")
	require.NoError(t, err, "%s", out)
}

// memberCluster is the cache service's members, one on each of c's
// (three) nodes, with their directories where kindlab mounts them into
// the nodes.
func memberCluster(t *testing.T, c *kindlab.Cluster, dir string, pods *kindlab.Pods) *engines.Cluster {
	cl := &engines.Cluster{Service: "cache", StateDir: filepath.Join(dir, "engines"), Dial: c.Net.DialFromHostOf, Launcher: pods}
	for i, n := range c.Plan.Nodes {
		node := n.Name
		h, ok := c.Net.Host(node)
		require.True(t, ok, node)
		dirs := kindlab.MemberDirs(dir, node)
		cl.Members = append(cl.Members, engines.Member{
			Index: i, Name: fmt.Sprintf("cache-%d", i), Node: node, NetNS: h.NetNS, Addr: h.Addr,
			DataDir: filepath.Join(dirs[0], "cache"), LogDir: filepath.Join(dirs[1], "cache"),
		})
	}
	return cl
}

func status(t *testing.T, eng *redis.Engine, cl *engines.Cluster) engines.Status {
	st, err := eng.Status(context.Background(), cl)
	require.NoError(t, err)
	return st
}
