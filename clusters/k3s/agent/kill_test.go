package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// A kill signals, with SIGKILL, the processes of the named containers'
// cgroups (and their sub-cgroups) and no other: not the pod's sandbox,
// not another container. The processes are real; the cgroup tree is
// files, as the agent reads it.
func TestKill(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "v1", true: "v2"}[v2], func(t *testing.T) {
			root, podDir, _ := cgroupTree(t, v2)
			engine, sandbox := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
			name := func(id string) string {
				if v2 {
					return "cri-containerd-" + id + ".scope"
				}
				return id
			}
			start := func() *exec.Cmd {
				c := exec.Command("sleep", "600")
				require.NoError(t, c.Start())
				t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
				return c
			}
			main, child, other := start(), start(), start()
			procs := func(dir string, cs ...*exec.Cmd) {
				require.NoError(t, os.MkdirAll(dir, 0o755))
				var b strings.Builder
				for _, c := range cs {
					fmt.Fprintln(&b, c.Process.Pid)
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(b.String()), 0o644))
			}
			procs(filepath.Join(podDir, name(engine)), main)
			procs(filepath.Join(podDir, name(engine), "sub"), child)
			procs(filepath.Join(podDir, name(sandbox)), other)

			n, err := Kill(root, podUID, []string{engine})
			require.NoError(t, err)
			require.Equal(t, 2, n)
			for _, c := range []*exec.Cmd{main, child} {
				err := c.Wait()
				var ee *exec.ExitError
				require.ErrorAs(t, err, &ee)
				require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
			}
			require.NoError(t, other.Process.Signal(syscall.Signal(0)), "the sandbox's process lives")

			// again: the ended processes are killed already
			n, err = Kill(root, podUID, []string{engine})
			require.NoError(t, err)
			require.Equal(t, 2, n)
		})
	}
}

func TestKillRefuses(t *testing.T) {
	root, podDir, _ := cgroupTree(t, false)
	id := strings.Repeat("c3", 32)
	for name, args := range map[string]struct {
		uid string
		ids []string
	}{
		"not a UID":    {"etcd-0", []string{id}},
		"not an ID":    {podUID, []string{"../../x"}},
		"no container": {podUID, nil},
		"no such pod":  {"0042bf4b-a0fc-44c6-b2af-607a5d1c7c18", []string{id}},
	} {
		_, err := Kill(root, args.uid, args.ids)
		require.Error(t, err, name)
	}
	// a process outside the agent's PID namespace reads as 0
	require.NoError(t, os.MkdirAll(filepath.Join(podDir, id), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(podDir, id, "cgroup.procs"), []byte("0\n"), 0o644))
	_, err := Kill(root, podUID, []string{id})
	require.ErrorContains(t, err, "hostPID")
}

func TestContainerID(t *testing.T) {
	id := strings.Repeat("0f", 32)
	require.Equal(t, id, ContainerID("containerd://"+id))
	require.Equal(t, id, ContainerID("cri-o://"+id))
	require.Empty(t, ContainerID(id))
	require.Empty(t, ContainerID("containerd://../x"))
}
