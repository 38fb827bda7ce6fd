package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

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
	_, err := f.exec(ctx, m, "mkdir", "-p", "-m", strconv.FormatUint(uint64(perm.Perm()), 8), "--", dir)
	return err
}

// Exists says whether path exists on m's node (test -e).
func (f NodeFiles) Exists(ctx context.Context, m engines.Member, path string) (bool, error) {
	if err := f.under(path); err != nil {
		return false, err
	}
	code, err := f.exec(ctx, m, "test", "-e", path)
	switch {
	case err == nil:
		return true, nil
	case code == 1:
		return false, nil
	}
	return false, err
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

// exec runs argv in the agent of m's node and returns its exit code, with
// an error for any code but 0. A node whose agent does not run (yet: the
// node was powered on again) is asked again until agentWait has passed;
// -1 is a command that never ran to an exit.
func (f NodeFiles) exec(ctx context.Context, m engines.Member, argv ...string) (int, error) {
	deadline := time.Now().Add(agentWait)
	for {
		code, err := f.execOnce(ctx, m, argv...)
		if err == nil || code >= 0 || time.Now().After(deadline) {
			return code, err
		}
		select {
		case <-ctx.Done():
			return code, err
		case <-time.After(2 * time.Second):
		}
	}
}

func (f NodeFiles) execOnce(ctx context.Context, m engines.Member, argv ...string) (int, error) {
	node := f.NodeMap.ClusterNode(m.Node)
	ag := &agent.Client{Kube: f.Cluster.Client, Scenario: f.Scenario}
	pod, err := ag.PodOn(ctx, node)
	if err != nil {
		return -1, fmt.Errorf("k3s: %s's files on node %s: %w", m.Name, node, err)
	}
	if f.Cluster.Config == nil {
		return -1, errors.New("k3s: no client configuration to exec in the agent with")
	}
	req := f.Cluster.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(k3s.Namespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: "agent", Command: argv, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(f.Cluster.Config, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	var out bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &out})
	if err == nil {
		return 0, nil
	}
	code := -1
	var ee utilexec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitStatus()
	}
	return code, fmt.Errorf("k3s: %s on node %s (agent %s): %w: %s", strings.Join(argv, " "), node, pod, err, strings.TrimSpace(out.String()))
}

// RemoveMember removes member m's directory from its node: its data,
// gone with a destroyed node's disks.
func (f NodeFiles) RemoveMember(ctx context.Context, m engines.Member) error {
	dir := filepath.Join(Root(f.Scenario), m.Name)
	if err := f.under(dir + "/data"); err != nil {
		return err
	}
	_, err := f.exec(ctx, m, "rm", "-rf", "--", dir)
	return err
}
