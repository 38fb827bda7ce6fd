package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// A kill sends SIGKILL to every process of some of a pod's containers on
// the node, as the local lab kills a member's process: no SIGTERM, no
// grace period, no clean shutdown. A pod deletion (what the API offers)
// gives the engine its grace period to shut down cleanly, which is a
// restart, not a crash. The pod's sandbox (its "pause" container) is
// left alone: the kubelet sees the containers end as a crash does.
//
// The processes are found in the containers' cgroups (cgroup.procs, read
// through the node's cgroup root) and signalled by PID, which needs the
// node's PID namespace (the agent runs with hostPID) and CAP_KILL.

// containerIDRE is a container's ID as its runtime names it (containerd,
// CRI-O, Docker: 64 hex digits).
var containerIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ContainerID is the ID in a container status' containerID
// ("containerd://ID"), or "" for one that is not a valid ID.
func ContainerID(statusID string) string {
	_, id, ok := strings.Cut(statusID, "://")
	if !ok || !containerIDRE.MatchString(id) {
		return ""
	}
	return id
}

// Kill sends SIGKILL to every process of the containers (by ID) of pod
// uid, found under the node's cgroup root cgroups; it returns how many
// processes it signalled. A container with no cgroup (it ended already)
// is skipped; a pod with no cgroup on the node is an error.
func Kill(cgroups, uid string, containers []string) (int, error) {
	if !podUIDRE.MatchString(uid) {
		return 0, fmt.Errorf("kill: %q is not a pod UID", uid)
	}
	for _, c := range containers {
		if !containerIDRE.MatchString(c) {
			return 0, fmt.Errorf("kill: %q is not a container ID", c)
		}
	}
	if len(containers) == 0 {
		return 0, errors.New("kill: no container named: the pod's sandbox is not killed")
	}
	dir, _, err := (&freezer{cgroups: cgroups}).podCgroup(uid)
	if err != nil {
		return 0, fmt.Errorf("kill: %w", err)
	}
	pids, err := containerPIDs(dir, containers)
	if err != nil {
		return 0, fmt.Errorf("kill: pod %s: %w", uid, err)
	}
	n := 0
	var errs []error
	for _, pid := range pids {
		// a process that exited meanwhile is killed already
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill: pid %d: %w", pid, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// containerPIDs are the PIDs in the cgroups (and their descendants)
// under pod whose name holds one of the container IDs: cgroupfs' "ID",
// systemd's "cri-containerd-ID.scope" and the like.
func containerPIDs(pod string, containers []string) ([]int, error) {
	ents, err := os.ReadDir(pod)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		if !e.IsDir() || !holdsAny(e.Name(), containers) {
			continue
		}
		err := filepath.WalkDir(filepath.Join(pod, e.Name()), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // a cgroup gone meanwhile: its processes ended
			}
			if d.IsDir() {
				return nil
			}
			if d.Name() != "cgroup.procs" {
				return nil
			}
			ps, err := readPIDs(path)
			pids = append(pids, ps...)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return pids, nil
}

func holdsAny(name string, ids []string) bool {
	for _, id := range ids {
		if strings.Contains(name, id) {
			return true
		}
	}
	return false
}

// readPIDs reads a cgroup.procs file. A 0 is a process outside the
// reader's PID namespace: an agent without hostPID cannot signal it.
func readPIDs(path string) ([]int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a PID", path, sc.Text())
		}
		if pid <= 0 {
			return nil, fmt.Errorf("%s: a process outside this PID namespace: the agent needs the node's (hostPID)", path)
		}
		out = append(out, pid)
	}
	return out, sc.Err()
}
