package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/netlab"
)

// Down stops every process of the lab and removes its network, cgroups and
// state. Faults are undone first so that no rule outlives the lab.
func (l *Lab) Down(ctx context.Context) error {
	var errs []error
	if l.mach != nil {
		// the machines go with everything in them; a graceful stop of
		// each member through the API only makes down slower
		errs = append(errs, l.mach.Down(ctx), os.RemoveAll(l.dir))
		return errors.Join(errs...)
	}
	for _, ss := range l.st.Services {
		if e, err := l.eng.get(ss.Engine, ss); err == nil {
			// A graceful stop flushes what engines persist; errors do not
			// matter, the network teardown kills whatever is left.
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_ = e.Stop(sctx, &ss.Cluster)
			cancel()
		}
	}
	if err := l.net.Down(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DownByName removes a lab by name, also when its state is damaged or its
// chaosloop crashed mid-way.
func DownByName(ctx context.Context, opts Options, name string) error {
	if err := Supported(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	if l, err := Open(ctx, opts, name); err == nil {
		return l.Down(ctx)
	}
	dir := opts.StateDir(name)
	if m := opts.machines(dir); m != nil {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no lab named %q (no state in %s)", name, dir)
		}
		if err := m.Down(ctx); err != nil {
			return err
		}
	} else if nl, err := netlab.Load(opts.Log, dir); err == nil {
		if err := nl.Down(ctx); err != nil {
			return err
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no lab named %q (no state in %s)", name, dir)
	}
	return os.RemoveAll(dir)
}

// DownAll removes every chaosloop lab on the machine: every state directory
// under opts.Root, every cl-* namespace and chaosloop cgroup.
func DownAll(ctx context.Context, opts Options) error {
	if err := Supported(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	names, _ := List(opts)
	var errs []error
	for _, n := range names {
		if err := DownByName(ctx, opts, n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	if err := netlab.DownAll(ctx, opts.Log, opts.Root); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
