package probe

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// The probes of attached members are run against a real etcd through
// port-forward in clusters/kind/kindlab's test (a kubelet is needed);
// here, what needs none.

func TestPodsLauncher(t *testing.T) {
	ctx := context.Background()
	l := podsLauncher{"etcd-0": true, "etcd-1": false, "etcd-10": true, "etcd.a": true}
	require.True(t, l.Alive(ctx, "etcd-0.etcd"))
	require.False(t, l.Alive(ctx, "etcd-1.etcd"), "its pod does not run")
	require.True(t, l.Alive(ctx, "etcd-10.etcd"), "not etcd-1's")
	require.True(t, l.Alive(ctx, "etcd.a.etcd"), "a pod name with a dot")
	require.False(t, l.Alive(ctx, "etcd-2.etcd"), "no such pod")
	require.False(t, l.Alive(ctx, "etcd-0"), "a process is MEMBER.WHAT")
	_, err := l.Start(ctx, engines.Member{}, proc.Spec{})
	require.ErrorIs(t, err, errAttached)
	require.ErrorIs(t, l.Signal(ctx, "etcd-0.etcd", syscall.SIGSTOP), errAttached)
	require.ErrorIs(t, l.Stop(ctx, "etcd-0.etcd", 0), errAttached)
}

func TestForwarderDialsOnlyAttachedPods(t *testing.T) {
	f := &Forwarder{Cluster: &k3s.Cluster{}, Namespace: "adopter"}
	f.SetPods(map[netip.Addr]string{netip.MustParseAddr("10.244.1.5"): "etcd-0"})
	_, err := f.Dial(t.Context(), "tcp", "10.244.1.6:2379")
	require.ErrorContains(t, err, "no attached member's pod has address 10.244.1.6")
	_, err = f.Dial(t.Context(), "tcp", "etcd-0:2379")
	require.Error(t, err, "an address, not a name")
}

func TestSupported(t *testing.T) {
	sc, err := scenarios.Parse("../testdata/attach.yaml")
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	require.NoError(t, Supported(topo.Service("etcd")))
	for _, kind := range []string{scenarios.KindMySQL, scenarios.KindRedis, scenarios.KindKafka, scenarios.KindMongoDB, scenarios.KindZookeeper} {
		sv := &topology.Service{Name: "x", Kind: kind, Spec: &scenarios.Service{Name: "x", Kind: kind}}
		err := Supported(sv)
		require.True(t, errors.Is(err, ErrNoProbe), "%s: %v", kind, err)
	}
}
