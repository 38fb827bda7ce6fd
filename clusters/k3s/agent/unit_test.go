package agent

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	chaoslab "github.com/chaosloop/chaosloop/lab"
)

func TestRuleValidate(t *testing.T) {
	r, err := Rule{ID: "cut-1", Kind: Isolate, Peers: []string{"198.18.0.9", "198.18.1.0/24", "198.18.0.9/32", "198.18.1.7/24"}}.Validate()
	require.NoError(t, err)
	require.Equal(t, []string{"198.18.0.9/32", "198.18.1.0/24"}, r.Peers, "normalised: CIDRs, masked, sorted, unique")

	for name, bad := range map[string]Rule{
		"no id":          {Kind: Isolate, Peers: []string{"198.18.0.1"}},
		"id with space":  {ID: "a b", Kind: Isolate, Peers: []string{"198.18.0.1"}},
		"kind":           {ID: "a", Kind: "partition", Peers: []string{"198.18.0.1"}},
		"no peers":       {ID: "a", Kind: Isolate},
		"bad peer":       {ID: "a", Kind: Isolate, Peers: []string{"dc2"}},
		"ipv6":           {ID: "a", Kind: Isolate, Peers: []string{"2001:db8::1"}},
		"isolate delay":  {ID: "a", Kind: Isolate, Peers: []string{"198.18.0.1"}, Delay: Duration(time.Millisecond)},
		"latency empty":  {ID: "a", Kind: Latency, Peers: []string{"198.18.0.1"}},
		"latency loss>1": {ID: "a", Kind: Latency, Peers: []string{"198.18.0.1"}, Loss: 1.5},
	} {
		_, err := bad.Validate()
		require.Error(t, err, name)
	}
}

func TestRuleJSONAndChain(t *testing.T) {
	r := Rule{ID: "slow", Kind: Latency, Peers: []string{"198.18.0.0/16"}, Delay: Duration(50 * time.Millisecond), Jitter: Duration(5 * time.Millisecond), Loss: 0.01}
	b, err := json.Marshal([]Rule{r})
	require.NoError(t, err)
	require.JSONEq(t, `[{"id":"slow","kind":"latency","peers":["198.18.0.0/16"],"delay":"50ms","jitter":"5ms","loss":0.01}]`, string(b))
	back, err := parseRules(string(b))
	require.NoError(t, err)
	require.Equal(t, []Rule{r}, back)

	c := r.chain()
	require.LessOrEqual(t, len(c), 28, "iptables chain names are at most 28 characters")
	require.True(t, strings.HasPrefix(c, chainPrefix))
	require.Equal(t, c, r.chain(), "deterministic")
	r2 := r
	r2.Delay = Duration(60 * time.Millisecond)
	require.NotEqual(t, c, r2.chain(), "a changed rule is a new chain")
	require.Equal(t, c[:len(chainPrefix)+8], r2.chain()[:len(chainPrefix)+8], "same id, same first half")

	_, err = parseRules(`[{"id":"a","kind":"isolate","peers":["198.18.0.1"]},{"id":"a","kind":"isolate","peers":["198.18.0.2"]}]`)
	require.ErrorContains(t, err, "twice")
}

func TestAllocQueue(t *testing.T) {
	used := map[uint16]bool{}
	a, err := allocQueue("x", used)
	require.NoError(t, err)
	b, err := allocQueue("x", used)
	require.NoError(t, err)
	require.NotEqual(t, a, b, "a used number is skipped")
	for _, q := range []uint16{a, b} {
		require.GreaterOrEqual(t, int(q), queueBase)
		require.Less(t, int(q), queueBase+queueSpan)
	}
}

func TestQueueOf(t *testing.T) {
	q, ok := queueOf([]string{"-d 198.18.0.2/32 -j NFQUEUE --queue-num 49408 --queue-bypass"})
	require.True(t, ok)
	require.Equal(t, uint16(49408), q)
	_, ok = queueOf([]string{"-s 198.18.0.2/32 -j DROP"})
	require.False(t, ok)
}

func TestManifest(t *testing.T) {
	_, err := NewManifest("registry.example/chaosloop:v1", "Not_A_Label")
	require.ErrorContains(t, err, "cannot label chaosloop's objects")
	m, err := NewManifest("registry.example/chaosloop:v1", "sc1")
	require.NoError(t, err)
	ds := m.DaemonSet
	require.Equal(t, Namespace, ds.Namespace)
	require.Equal(t, ManagedBy, ds.Labels[ManagedByLabel])
	require.Equal(t, ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"], ds.Spec.Template.Labels["app.kubernetes.io/name"], "the selector selects the pods")
	spec := ds.Spec.Template.Spec
	require.True(t, spec.HostNetwork, "the node's network namespace")
	require.True(t, spec.HostPID, "a hard kill signals the node's PIDs")
	require.Equal(t, Name, spec.ServiceAccountName)
	tolerated := func(key string) bool {
		return slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
			return tl.Key == key && tl.Operator == corev1.TolerationOpExists
		})
	}
	require.True(t, tolerated("node-role.kubernetes.io/control-plane"))
	require.True(t, tolerated("node-role.kubernetes.io/master"))
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	require.Equal(t, "registry.example/chaosloop:v1", c.Image)
	require.Equal(t, []corev1.Capability{"NET_ADMIN", "DAC_OVERRIDE", "FOWNER", "KILL"}, c.SecurityContext.Capabilities.Add)
	require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Equal(t, []string{"chaosloop", "internal", "agent", "--in-cluster", "--node", "$(NODE_NAME)", "--scenario", "sc1",
		"--cgroups", CgroupsMount, "--state-dir", StateDir}, c.Command)
	// pause: the node's cgroups and a state directory that outlives the pod
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		hostPaths[v.Name] = v.HostPath.Path
	}
	for _, vm := range c.VolumeMounts {
		hostPaths[vm.MountPath] = hostPaths[vm.Name]
	}
	require.Equal(t, "/sys/fs/cgroup", hostPaths[CgroupsMount])
	require.Equal(t, StateDir, hostPaths[StateDir])
	require.Equal(t, k3s.DataRoot, hostPaths[k3s.DataRoot], "deploy mode's members' files, at the same path")
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, "spec.nodeName", c.Env[i].ValueFrom.FieldRef.FieldPath, "NODE_NAME from the downward API")

	r := m.Role.Rules
	require.Len(t, r, 1)
	require.Equal(t, []string{"configmaps"}, r[0].Resources)
	for _, v := range []string{"get", "list", "watch", "update"} {
		require.Contains(t, r[0].Verbs, v)
	}
	require.Equal(t, Name, m.RoleBinding.RoleRef.Name)
	require.Equal(t, Name, m.RoleBinding.Subjects[0].Name)
	for _, l := range []map[string]string{m.ServiceAccount.Labels, m.Role.Labels, m.RoleBinding.Labels, m.Namespace.Labels} {
		require.Equal(t, ManagedBy, l[ManagedByLabel])
	}
	for _, l := range []map[string]string{m.ServiceAccount.Labels, m.Role.Labels, m.RoleBinding.Labels, ds.Labels} {
		require.Equal(t, "sc1", l[k3s.LabelScenario], "down selects the scenario's objects")
	}
	require.Empty(t, m.Namespace.Labels[k3s.LabelScenario], "the namespace is every scenario's")
}

func TestExpire(t *testing.T) {
	now := time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	rules := []Rule{
		{ID: "forever", Kind: Isolate, Peers: []string{"198.18.0.1"}},
		{ID: "gone", Kind: Isolate, Peers: []string{"198.18.0.1"}, Expires: at(-time.Second)},
		{ID: "now", Kind: Isolate, Peers: []string{"198.18.0.1"}, Expires: at(0)},
		{ID: "later", Kind: Isolate, Peers: []string{"198.18.0.1"}, Expires: at(time.Minute)},
		{ID: "soon", Kind: Isolate, Peers: []string{"198.18.0.1"}, Expires: at(time.Second)},
	}
	live, expired, next := expire(rules, now)
	require.Equal(t, []string{"gone", "now"}, expired)
	require.Len(t, live, 3)
	require.Equal(t, now.Add(time.Second), next)
	_, _, next = expire(rules[:1], now)
	require.True(t, next.IsZero())

	local := time.Date(2026, 12, 3, 4, 0, 0, 123456789, time.FixedZone("x", 3600))
	r, err := Rule{ID: "r", Kind: Isolate, Peers: []string{"198.18.0.1"}, Expires: &local}.Validate()
	require.NoError(t, err)
	require.Equal(t, "2026-12-03T03:00:00.123Z", r.Expires.Format(time.RFC3339Nano), "one form: UTC, milliseconds")
}

// The agent's dialer marks its sockets so its own isolate rules (and
// other nodes') let them through: SO_MARK and the DSCP.
func TestExemptDialer(t *testing.T) {
	if os.Geteuid() != 0 {
		enginetest.RequireLab(t, "SO_MARK needs CAP_NET_ADMIN (root)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := ExemptDialer().DialContext(t.Context(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var mark, tos int
	require.NoError(t, raw.Control(func(fd uintptr) {
		mark, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK)
		tos, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TOS)
	}))
	require.Equal(t, ExemptMark, mark)
	require.Equal(t, ExemptDSCP, tos>>2)
}

// A dial that timed out on the node reaches chaosloop as a timeout (the
// probes' "no evidence"), one that was refused as a plain error (down):
// the agent's own error lines, read back as the relay's client reads them.
func TestRelayedDialErrors(t *testing.T) {
	timedOut := Relay(t.Context(), "tcp", "198.18.0.1:9", strings.NewReader(""), io.Discard, time.Nanosecond, time.Second)
	require.Error(t, timedOut)
	require.True(t, chaoslab.IsTimeout(remoteError(timedOut.Error())), "%v", timedOut)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	refused := Relay(t.Context(), "tcp", addr, strings.NewReader(""), io.Discard, time.Second, time.Second)
	require.ErrorContains(t, refused, "connection refused")
	require.False(t, chaoslab.IsTimeout(remoteError(refused.Error())), "%v", refused)
	require.EqualError(t, remoteError(refused.Error()), refused.Error(), "the agent's words, as they were")
}
