package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Down removes the lab: it kills every process recorded under the state
// directory (package proc records) and every process of its cgroups and
// namespaces, then deletes the namespaces (with their devices and iptables
// rules), cgroups, /etc/netns files and the state file. Other files in the
// state directory (data, logs) are left to the caller. It works from the
// state file alone, e.g. after chaosloop crashed.
func (l *Lab) Down(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	var errs []error
	if err := killRecorded(ctx, l.log, st.StateDir); err != nil {
		errs = append(errs, err)
	}
	if st.CgroupRoot != "" {
		if err := removeCgroupTree(ctx, st.CgroupRoot); err != nil {
			errs = append(errs, err)
		}
		// The shared parent goes when the last lab leaves it.
		_ = os.Remove(filepath.Dir(st.CgroupRoot))
	}
	if err := removeNetNS(ctx, st.Plan.namespaces(), st.Plan.adopted()); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(filepath.Join(st.StateDir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := joinErrs("down "+st.Plan.Lab, errs); err != nil {
		return err
	}
	l.log.Info("lab removed", "lab", st.Plan.Lab)
	return nil
}

// killRecorded SIGKILLs every process recorded by package proc anywhere
// under dir (by PID and start time, so no reused PID is hit) and forgets it.
func killRecorded(ctx context.Context, log *slog.Logger, dir string) error {
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		// Records sit near the top (DIR/procs, DIR/<service>/procs); do not
		// crawl engines' data directories.
		if rel, _ := filepath.Rel(dir, p); strings.Count(rel, string(filepath.Separator)) >= 3 {
			return filepath.SkipDir
		}
		if d.Name() != "procs" {
			return nil
		}
		parent := filepath.Dir(p)
		recs, err := proc.List(parent)
		if err != nil {
			errs = append(errs, err)
			return filepath.SkipDir
		}
		for _, r := range recs {
			if r.Alive() {
				log.Info("killing recorded process", "name", r.Name, "pid", r.PID)
				if err := r.Kill(); err != nil {
					errs = append(errs, err)
					continue
				}
				if !r.Wait(ctx, 5*time.Second) {
					errs = append(errs, errors.New(r.Name+": still alive after SIGKILL"))
					continue
				}
			}
			if err := proc.Forget(parent, r.Name); err != nil {
				errs = append(errs, err)
			}
		}
		return filepath.SkipDir
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeNetNS kills what still lives in each namespace (but the adopted
// ones, which are only named) and deletes it and its /etc/netns
// directory; missing namespaces are fine.
func removeNetNS(ctx context.Context, names []string, adopted map[string]bool) error {
	existing, err := namedNetNS()
	if err != nil {
		return err
	}
	var errs []error
	var del []string
	for _, ns := range names {
		if existing[ns] && !adopted[ns] {
			if err := killNetNSProcs(ctx, ns); err != nil {
				errs = append(errs, err)
			}
		}
		if existing[ns] {
			del = append(del, "netns del "+ns)
		}
		if err := os.RemoveAll(filepath.Join("/etc/netns", ns)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ipBatch(ctx, "", del); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DownAll removes every chaosloop lab on the machine, also after a crash:
// each state directory under root (its lab's Down, its recorded processes,
// then the directory itself), every namespace named cl-*, and every cgroup
// under the chaosloop cgroup.
func DownAll(ctx context.Context, log *slog.Logger, root string) error {
	return downAll(ctx, log, root, NSPrefix, cgroupBase())
}

// DownAllPrefix removes every namespace whose name begins with nsPrefix
// (another backend's labs, NSPrefix in their Options), and no cgroup.
func DownAllPrefix(ctx context.Context, log *slog.Logger, nsPrefix string) error {
	if !nsPrefixRE.MatchString(nsPrefix) {
		return fmt.Errorf("netlab: namespace prefix %q", nsPrefix)
	}
	return downAll(ctx, log, "", nsPrefix, "")
}

// downAll is DownAll limited to namespaces with nsPrefix and the cgroup tree
// cgroups (tests use it on their own lab only: other labs may be running).
func downAll(ctx context.Context, log *slog.Logger, root, nsPrefix, cgroups string) error {
	var errs []error
	dirs := []string{}
	if root == "" {
		// Nothing to scan: only namespaces and cgroups.
	} else if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(root, e.Name()))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, dir := range dirs {
		if l, err := Load(log, dir); err == nil {
			if err := l.Down(ctx); err != nil {
				errs = append(errs, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := killRecorded(ctx, log, dir); err != nil {
			errs = append(errs, err)
			continue // keep the records of what could not be killed
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	existing, err := namedNetNS()
	if err != nil {
		errs = append(errs, err)
	}
	var names []string
	for ns := range existing {
		if strings.HasPrefix(ns, nsPrefix) {
			names = append(names, ns)
		}
	}
	// /etc/netns entries of namespaces that are already gone.
	if ents, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), nsPrefix) && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	if len(names) > 0 {
		log.Info("removing namespaces", "count", len(names))
	}
	if err := removeNetNS(ctx, names, nil); err != nil {
		errs = append(errs, err)
	}
	if cgroups != "" {
		if err := removeCgroupTree(ctx, cgroups); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrs("down all", errs)
}
