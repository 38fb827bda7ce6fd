package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// NodeFiles are the members' files on their cluster nodes (engines.Files),
// reached through the scenario's agent on the member's node, whose pod
// mounts DataRoot at the same path: an engine asks whether a member has
// data before it starts it, and makes its directories. Only paths under
// DataRoot/SCENARIO are touched.
type NodeFiles struct {
	Cluster  *k3s.Cluster
	Scenario string
	NodeMap  k3s.NodeMap
}

var _ engines.Files = NodeFiles{}

// MkdirAll makes dir on m's node with mkdir -p (perm on dir itself).
func (f NodeFiles) MkdirAll(ctx context.Context, m engines.Member, dir string, perm os.FileMode) error {
	if err := f.under(dir); err != nil {
		return err
	}
	_, _, err := f.exec(ctx, m, nil, "mkdir", "-p", "-m", strconv.FormatUint(uint64(perm.Perm()), 8), "--", dir)
	return err
}

// Exists says whether path exists on m's node (test -e).
func (f NodeFiles) Exists(ctx context.Context, m engines.Member, path string) (bool, error) {
	if err := f.under(path); err != nil {
		return false, err
	}
	_, code, err := f.exec(ctx, m, nil, "test", "-e", path)
	switch {
	case err == nil:
		return true, nil
	case code == 1:
		return false, nil
	}
	return false, err
}

// WriteFile writes data to path on m's node (through the agent's shell:
// its stdin to the file, then its mode).
func (f NodeFiles) WriteFile(ctx context.Context, m engines.Member, path string, data []byte, perm os.FileMode) error {
	if err := f.under(path); err != nil {
		return err
	}
	_, _, err := f.exec(ctx, m, data, "sh", "-c", `cat > "$1" && chmod "$2" "$1"`, "sh", path, strconv.FormatUint(uint64(perm.Perm()), 8))
	return err
}

// ReadFile reads path on m's node; an error wrapping os.ErrNotExist when
// it is not there.
func (f NodeFiles) ReadFile(ctx context.Context, m engines.Member, path string) ([]byte, error) {
	if err := f.under(path); err != nil {
		return nil, err
	}
	const missing = 3
	out, code, err := f.exec(ctx, m, nil, "sh", "-c", `test -e "$1" || exit 3; exec cat -- "$1"`, "sh", path)
	if code == missing {
		return nil, fmt.Errorf("k3s: %s on node %s: %w", path, f.NodeMap.ClusterNode(m.Node), os.ErrNotExist)
	}
	return out, err
}

// Root is the scenario's directory on every node.
func Root(scenario string) string { return filepath.Join(DataRoot, scenario) }

// under refuses a path outside the scenario's directory: NodeFiles acts
// as root on the adopter's nodes.
func (f NodeFiles) under(path string) error {
	root := Root(f.Scenario)
	if clean := filepath.Clean(path); !filepath.IsAbs(path) || !strings.HasPrefix(clean, root+"/") {
		return fmt.Errorf("k3s: %s is not under %s, the scenario's directory on its nodes", path, root)
	}
	return nil
}

// agentWait bounds the wait for a node's agent to run again (its node
// just powered on) before a command on its files fails.
const agentWait = 3 * time.Minute

// exec runs argv in the agent of m's node, stdin on its standard input
// (none when nil), and returns its standard output and exit code, with
// an error for any code but 0. A node whose agent does not run (yet: the
// node was powered on again) is asked again until agentWait has passed;
// -1 is a command that never ran to an exit.
func (f NodeFiles) exec(ctx context.Context, m engines.Member, stdin []byte, argv ...string) ([]byte, int, error) {
	deadline := time.Now().Add(agentWait)
	for {
		out, code, err := f.execOnce(ctx, m, stdin, argv...)
		if err == nil || code >= 0 || time.Now().After(deadline) {
			return out, code, err
		}
		select {
		case <-ctx.Done():
			return out, code, err
		case <-time.After(2 * time.Second):
		}
	}
}

func (f NodeFiles) execOnce(ctx context.Context, m engines.Member, stdin []byte, argv ...string) ([]byte, int, error) {
	node := f.NodeMap.ClusterNode(m.Node)
	ag := &agent.Client{Kube: f.Cluster.Client, Scenario: f.Scenario}
	out, code, err := ag.Exec(ctx, f.Cluster.Config, node, stdin, argv...)
	if err != nil {
		return out, code, fmt.Errorf("k3s: %s's files on node %s: %w", m.Name, node, err)
	}
	return out, code, nil
}

// RemoveMember removes member m's directory from its node: its data,
// gone with a destroyed node's disks.
func (f NodeFiles) RemoveMember(ctx context.Context, m engines.Member) error {
	dir := filepath.Join(Root(f.Scenario), m.Name)
	if err := f.under(dir + "/data"); err != nil {
		return err
	}
	_, _, err := f.exec(ctx, m, nil, "rm", "-rf", "--", dir)
	return err
}
