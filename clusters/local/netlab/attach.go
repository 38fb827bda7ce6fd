package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// AttachHost makes the network namespace of process pid the host of an
// adopted node (Options.Adopt) and wires it as Up wires a lab host: its
// ports, address and routes, and the faults in force. Attaching the
// namespace already attached changes nothing; another one (the node's
// container was restarted) replaces it.
func (l *Lab) AttachHost(ctx context.Context, node string, pid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.st.Plan.host(node)
	if !ok {
		return fmt.Errorf("netlab: unknown node %q", node)
	}
	if !h.Adopted {
		return fmt.Errorf("netlab: node %s is the lab's own host, not an adopted one", node)
	}
	exists, same, err := sameNetNS(h.NetNS, pid)
	if err != nil {
		return fmt.Errorf("netlab: attach %s: %w", node, err)
	}
	if !same {
		var cmds []string
		if exists {
			// the name of the node's previous namespace: without it, that
			// namespace (and the veths in it) goes away
			cmds = append(cmds, "netns del "+h.NetNS)
		}
		cmds = append(cmds, fmt.Sprintf("netns attach %s %d", h.NetNS, pid))
		if err := ipBatch(ctx, "", cmds); err != nil {
			return fmt.Errorf("netlab: attach %s: %w", node, err)
		}
	}
	if err := l.build(ctx); err != nil {
		return fmt.Errorf("netlab: attach %s: %w", node, err)
	}
	l.log.Info("host attached", "lab", l.st.Plan.Lab, "node", node, "pid", pid, "netns", h.NetNS, "addr", h.Addr)
	return nil
}

// sameNetNS says whether the named namespace exists and whether it is
// process pid's network namespace.
func sameNetNS(name string, pid int) (exists, same bool, err error) {
	var named, proc unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &named); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return false, false, err
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &proc); err != nil {
		return true, false, fmt.Errorf("process %d: %w", pid, err)
	}
	return true, named.Dev == proc.Dev && named.Ino == proc.Ino, nil
}

// adopted are the plan's adopted hosts' namespaces.
func (p *Plan) adopted() map[string]bool {
	m := map[string]bool{}
	for _, h := range p.Hosts {
		if h.Adopted {
			m[h.NetNS] = true
		}
	}
	return m
}
