package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ErrNoCgroup is returned by Freeze and Thaw on a machine without cgroup v2.
var ErrNoCgroup = errors.New("netlab: no cgroup v2 on this machine")

func (l *Lab) ensureCgroups() error {
	if l.st.CgroupRoot == "" {
		return nil
	}
	for i := range l.st.Plan.Hosts {
		if err := os.MkdirAll(l.st.cgroupDir(&l.st.Plan.Hosts[i]), 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	return nil
}

// PowerOff powers a node off: every process of it dies at once (SIGKILL of
// its whole cgroup through cgroup.kill, then of anything else left in its
// namespace), and its ports go down while it is off, so peers see a silent
// machine (timeouts) rather than one refusing connections. It returns
// once the node's processes are gone.
func (l *Lab) PowerOff(ctx context.Context, node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.st.Plan.host(node)
	if !ok {
		return fmt.Errorf("netlab: unknown node %q", node)
	}
	l.st.Off = addTo(l.st.Off, node)
	// A power cycle also ends a freeze.
	l.st.Frozen = removeFrom(l.st.Frozen, node)
	if err := l.st.write(); err != nil {
		return err
	}
	var errs []error
	if dir := l.st.cgroupDir(h); dir != "" {
		if err := killCgroup(ctx, dir); err != nil {
			errs = append(errs, err)
		} else if err := renewCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := killNetNSProcs(ctx, h.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := l.apply(ctx); err != nil {
		errs = append(errs, err)
	}
	l.log.Info("power off", "lab", l.st.Plan.Lab, "node", node)
	return joinErrs("power off "+node, errs)
}

// PowerOn marks a node powered again and brings its ports back (unless it
// is isolated); the caller restarts its engines.
func (l *Lab) PowerOn(ctx context.Context, node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.st.Plan.host(node); !ok {
		return fmt.Errorf("netlab: unknown node %q", node)
	}
	l.st.Off = removeFrom(l.st.Off, node)
	if err := l.st.write(); err != nil {
		return err
	}
	if err := l.apply(ctx); err != nil {
		return fmt.Errorf("netlab: power on %s: %w", node, err)
	}
	l.log.Info("power on", "lab", l.st.Plan.Lab, "node", node)
	return nil
}

// SetRouterPower powers a site's WAN router off or on (spec section 4:
// powering a site off takes its router down, so nothing transits a dark
// site). Its WAN links go down on the switch side of their bridges (never
// the router's own interface, whose routes would be lost) and every
// router's routes are recomputed, so traffic between two other sites
// reroutes around it or is blackholed; on power-on they come back.
func (l *Lab) SetRouterPower(ctx context.Context, site string, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.st.Plan.router(site); !ok {
		return fmt.Errorf("netlab: unknown site %q", site)
	}
	if on {
		l.st.DarkRouters = removeFrom(l.st.DarkRouters, site)
	} else {
		l.st.DarkRouters = addTo(l.st.DarkRouters, site)
	}
	if err := l.st.write(); err != nil {
		return err
	}
	if err := l.apply(ctx); err != nil {
		return fmt.Errorf("netlab: router of site %s %s: %w", site, upDown(on), err)
	}
	l.log.Info("router power", "lab", l.st.Plan.Lab, "site", site, "on", on)
	return nil
}

// RouterPowered reports whether a site's WAN router is on.
func (l *Lab) RouterPowered(site string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.st.dark(site)
}

// Powered reports whether a node is on.
func (l *Lab) Powered(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.st.off(node)
}

// Freeze stops every process of a node (cgroup.freeze, a gray failure:
// sockets stay open, nothing answers) and returns once it is frozen.
func (l *Lab) Freeze(ctx context.Context, node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setFrozen(ctx, node, true)
}

// Thaw undoes Freeze.
func (l *Lab) Thaw(ctx context.Context, node string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setFrozen(ctx, node, false)
}

func (l *Lab) setFrozen(ctx context.Context, node string, on bool) error {
	h, ok := l.st.Plan.host(node)
	if !ok {
		return fmt.Errorf("netlab: unknown node %q", node)
	}
	dir := l.st.cgroupDir(h)
	if dir == "" {
		return ErrNoCgroup
	}
	v := "0"
	if on {
		v = "1"
		l.st.Frozen = addTo(l.st.Frozen, node)
	} else {
		l.st.Frozen = removeFrom(l.st.Frozen, node)
	}
	if err := l.st.write(); err != nil {
		return err
	}
	if err := writeCgroupFile(dir, "cgroup.freeze", v); err != nil {
		return err
	}
	want := "frozen " + v
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			return err
		}
		if slices.Contains(strings.Split(string(ev), "\n"), want) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("netlab: %s: cgroup not %q after 5s", node, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeCgroupFile(dir, file, v string) error {
	return os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644)
}

// killCgroup SIGKILLs every process of a cgroup tree at once and waits
// until it is empty.
func killCgroup(ctx context.Context, dir string) error {
	if err := writeCgroupFile(dir, "cgroup.kill", "1"); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cgroup.kill %s: %w", dir, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil || slices.Contains(strings.Split(string(ev), "\n"), "populated 0") {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cgroup %s still populated 10s after cgroup.kill", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// renewCgroup replaces an emptied cgroup by a fresh one. On this kernel
// (6.18) a process started into a cgroup with CLONE_INTO_CGROUP after a
// cgroup.kill of it is killed at once (measured), so a node could never be
// powered on again in the same cgroup. A fresh one also drops the freeze.
func renewCgroup(dir string) error {
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("renew cgroup %s: %w", dir, err)
	}
	return os.MkdirAll(dir, 0o755)
}

// removeCgroupTree kills everything in a cgroup tree and removes its
// directories, deepest first.
func removeCgroupTree(ctx context.Context, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := killCgroup(ctx, dir); err != nil {
		return err
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNetNSProcs SIGKILLs every process living in a lab namespace: the lab
// started them (a node's whole machine), even those outside its cgroup.
func killNetNSProcs(ctx context.Context, ns string) error {
	pids, err := netnsPIDs(ctx, ns)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d in %s: %w", pid, ns, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			// A killed child of ours stays a zombie until reaped; that is gone enough.
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); zombie(st) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func zombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func joinErrs(what string, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlab: %s: %w", what, err)
	}
	return nil
}
