package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const podUID = "5ad699aa-3399-4730-ae12-9aa68ff97b07"

func TestFreezeRuleValidate(t *testing.T) {
	r, err := Rule{ID: "pause.service.etcd.0", Kind: Freeze, Pods: []string{podUID}}.Validate()
	require.NoError(t, err)
	require.Empty(t, r.Peers)
	for name, bad := range map[string]Rule{
		"no pod":         {ID: "a", Kind: Freeze},
		"pod not a UID":  {ID: "a", Kind: Freeze, Pods: []string{"etcd-0"}},
		"freeze peers":   {ID: "a", Kind: Freeze, Pods: []string{podUID}, Peers: []string{"198.18.0.1"}},
		"isolate of pod": {ID: "a", Kind: Isolate, Pods: []string{podUID}, Peers: []string{"198.18.0.1"}},
	} {
		_, err := bad.Validate()
		require.Error(t, err, name)
	}
}

// cgroupTree makes a node's cgroup root as the agent sees it, with the
// pod's cgroup where the kubelet puts it: v1, kind's cgroupfs layout in
// the freezer hierarchy; v2, systemd's slices.
func cgroupTree(t *testing.T, v2 bool) (root, podDir, file string) {
	root = t.TempDir()
	if v2 {
		podDir = filepath.Join(root, "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+strings.ReplaceAll(podUID, "-", "_")+".slice")
		file = filepath.Join(podDir, "cgroup.freeze")
		require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644))
	} else {
		podDir = filepath.Join(root, "freezer", "kubelet", "kubepods", "besteffort", "pod"+podUID)
		file = filepath.Join(podDir, "freezer.state")
	}
	// another pod and a container's cgroup inside ours
	require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(podDir), "pod0042bf4b-a0fc-44c6-b2af-607a5d1c7c17"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(podDir, "cf55acd10c28"), 0o755))
	require.NoError(t, os.WriteFile(file, []byte(map[bool]string{true: "0", false: "THAWED"}[v2]), 0o644))
	return root, podDir, file
}

func read(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// A freeze is marked, then applied; an agent started anew adopts the
// mark and thaws the pod once no rule wants it; Cleanup thaws what is
// marked; a pod gone meanwhile is thawed already.
func TestFreezer(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v1", true: "v2"}[v2], func(t *testing.T) {
			root, podDir, file := cgroupTree(t, v2)
			frozen, thawed := "FROZEN", "THAWED"
			if v2 {
				frozen, thawed = "1", "0"
			}
			state := filepath.Join(t.TempDir(), "state")
			rule := Rule{ID: "pause.service.etcd.0", Kind: Freeze, Pods: []string{podUID}}

			applied, err := (&freezer{cgroups: root, state: state}).apply([]Rule{rule})
			require.NoError(t, err)
			require.Equal(t, []string{rule.ID}, applied)
			require.Equal(t, frozen, read(t, file))
			require.Contains(t, read(t, filepath.Join(state, podUID+".frozen")), podDir)

			// a new agent: the rule still wanted stays; then recovered
			again := &freezer{cgroups: root, state: state}
			applied, err = again.apply([]Rule{rule})
			require.NoError(t, err)
			require.Equal(t, []string{rule.ID}, applied)
			applied, err = again.apply(nil)
			require.NoError(t, err)
			require.Empty(t, applied)
			require.Equal(t, thawed, read(t, file))
			require.NoFileExists(t, filepath.Join(state, podUID+".frozen"))

			// down with a pod frozen: Cleanup's thaw
			_, err = again.apply([]Rule{rule})
			require.NoError(t, err)
			require.NoError(t, (&freezer{cgroups: root, state: state}).thawAll())
			require.Equal(t, thawed, read(t, file))

			// the pod deleted while frozen: nothing to thaw
			_, err = again.apply([]Rule{rule})
			require.NoError(t, err)
			require.NoError(t, os.RemoveAll(podDir))
			_, err = again.apply(nil)
			require.NoError(t, err)
			require.NoFileExists(t, filepath.Join(state, podUID+".frozen"))

			// a pod not on this node
			_, err = again.apply([]Rule{rule})
			require.ErrorContains(t, err, "has no cgroup on this node")
		})
	}
}

// An agent deployed without the node's cgroups refuses freeze rules and
// still applies the others.
func TestFreezeWithoutCgroups(t *testing.T) {
	rc := &reconciler{}
	ids, err := rc.freeze([]Rule{{ID: "cut", Kind: Isolate}, {ID: "pause.x", Kind: Freeze, Pods: []string{podUID}}})
	require.Empty(t, ids)
	require.ErrorIs(t, err, errNoFreezer)
	require.ErrorContains(t, err, "rule pause.x")
}
