package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// A freeze rule (pause) stops every process of one pod on the node at
// once, as SIGSTOP does, through the pod's cgroup freezer: cgroup v2's
// cgroup.freeze, or v1's freezer.state where the kubelet runs on v1
// hierarchies. Processes stay frozen whatever the agent does; thawing is
// the rule's recovery. The pods frozen are marked in the agent's state
// directory on the node (a file per pod, naming its cgroup), written
// before the freeze: an agent that restarts adopts the marks, thaws the
// pods no longer wanted, and Cleanup thaws every marked one. A frozen
// pod fails its liveness probes as a stopped process would; on cgroup v1
// a kill of it (its kubelet restarting it) takes effect at the thaw.

// podUIDRE is a pod's UID.
var podUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// freezer freezes and thaws pods' cgroups.
type freezer struct {
	// cgroups is the node's /sys/fs/cgroup as the agent sees it.
	cgroups string
	// state is the directory of the marks.
	state string
}

// errNoFreezer is a freeze rule on an agent deployed without the node's
// cgroups (or state directory).
var errNoFreezer = errors.New("this agent has no access to the node's cgroups (--cgroups, --state-dir): redeploy it")

// podCgroup finds a pod's cgroup on the node: pod<UID> under the cgroupfs
// driver (kubepods/besteffort/pod<UID>, kubepods/pod<UID>), or
// kubepods-…-pod<UID with _>.slice under systemd's; on cgroup v1, in the
// freezer hierarchy. It returns the directory and whether it is v2.
func (f *freezer) podCgroup(uid string) (string, bool, error) {
	root, v2 := filepath.Join(f.cgroups, "freezer"), false
	if _, err := os.Stat(filepath.Join(f.cgroups, "cgroup.controllers")); err == nil {
		root, v2 = f.cgroups, true
	} else if _, err := os.Stat(root); err != nil {
		return "", false, fmt.Errorf("%s: neither cgroup v2 nor a v1 freezer hierarchy", f.cgroups)
	}
	plain, slice := "pod"+uid, "-pod"+strings.ReplaceAll(uid, "-", "_")+".slice"
	var found string
	// kubepods sits a few levels down at most (kind: kubelet/kubepods/QOS)
	const maxDepth = 6
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup gone meanwhile
		}
		name := d.Name()
		if name == plain || strings.HasSuffix(name, slice) {
			found = path
			return fs.SkipAll
		}
		if strings.Count(strings.TrimPrefix(path, root), string(filepath.Separator)) >= maxDepth {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return "", false, err
	}
	if found == "" {
		return "", false, fmt.Errorf("pod %s has no cgroup on this node (not running here?)", uid)
	}
	return found, v2, nil
}

// setFrozen freezes (or thaws) the cgroup dir. A cgroup that is gone (its pod
// deleted) is thawed already.
func setFrozen(dir string, v2, frozen bool) error {
	file, value := "freezer.state", map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
	if v2 {
		file, value = "cgroup.freeze", map[bool]string{true: "1", false: "0"}[frozen]
	}
	// no O_CREATE: a cgroup's files are the kernel's
	w, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if !frozen && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	_, err = w.WriteString(value)
	return errors.Join(err, w.Close())
}

// mark is what a mark file holds: the cgroup frozen.
type mark struct {
	dir string
	v2  bool
}

func (f *freezer) marks() (map[string]mark, error) {
	ents, err := os.ReadDir(f.state)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]mark{}
	for _, e := range ents {
		uid, ok := strings.CutSuffix(e.Name(), ".frozen")
		if !ok || !podUIDRE.MatchString(uid) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.state, e.Name()))
		if err != nil {
			return nil, err
		}
		kind, dir, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		out[uid] = mark{dir: dir, v2: kind == "v2"}
	}
	return out, nil
}

func (f *freezer) markFile(uid string) string { return filepath.Join(f.state, uid+".frozen") }

// apply freezes the pods of rules and thaws the marked pods no rule
// wants; it returns the ids of the rules in place.
func (f *freezer) apply(rules []Rule) ([]string, error) {
	have, err := f.marks()
	if err != nil {
		return nil, err
	}
	var applied []string
	var errs []error
	want := map[string]bool{}
	for _, r := range rules {
		var failed []error
		for _, pod := range r.Pods {
			want[pod] = true
			if err := f.freeze(pod, have); err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, errors.Join(failed...)))
			continue
		}
		applied = append(applied, r.ID)
	}
	for uid, m := range have {
		if want[uid] {
			continue
		}
		if err := f.thaw(uid, m); err != nil {
			errs = append(errs, err)
		}
	}
	slices.Sort(applied)
	return applied, errors.Join(errs...)
}

// freeze marks the pod's cgroup, then freezes it (again: idempotent).
func (f *freezer) freeze(uid string, have map[string]mark) error {
	m, ok := have[uid]
	if !ok {
		dir, v2, err := f.podCgroup(uid)
		if err != nil {
			return err
		}
		m = mark{dir: dir, v2: v2}
		if err := os.MkdirAll(f.state, 0o700); err != nil {
			return err
		}
		kind := map[bool]string{true: "v2", false: "v1"}[v2]
		if err := os.WriteFile(f.markFile(uid), []byte(kind+" "+dir+"\n"), 0o600); err != nil {
			return err
		}
	}
	return setFrozen(m.dir, m.v2, true)
}

// thaw thaws a marked pod's cgroup, then drops its mark.
func (f *freezer) thaw(uid string, m mark) error {
	if err := setFrozen(m.dir, m.v2, false); err != nil {
		return fmt.Errorf("thaw pod %s: %w", uid, err)
	}
	if err := os.Remove(f.markFile(uid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// thawAll thaws every marked pod: Cleanup's.
func (f *freezer) thawAll() error {
	_, err := f.apply(nil)
	return err
}
