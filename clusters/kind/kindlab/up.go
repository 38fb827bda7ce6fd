package kindlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Options are how Up stands a cluster up.
type Options struct {
	Image string // the node image (images.Built.Node)
	// StateDir holds the lab's state: netlab's (netlab/), the nodes'
	// files and the kubeconfig (kind/).
	StateDir string
	Log      *slog.Logger
	// Wait bounds kind's wait for the control plane and then Up's for
	// every node to be Ready.
	Wait time.Duration
}

// Cluster is a scenario's cluster on its lab network.
type Cluster struct {
	Plan *Plan
	Net  *netlab.Lab
	log  *slog.Logger
	dir  string // the lab's state directory
	mu   sync.Mutex
	mgmt string // the container Kubectl runs in
	// live answers which pod containers have processes (alive.go).
	live liveContainers
}

// Kubeconfig is the cluster's admin kubeconfig on this machine, as kind
// wrote it: its context (KubeContext) reaches the API server from here
// through the first control-plane node's port on loopback. With it the
// cluster serves as "a real cluster" for --on k3s.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.dir, "kind", "kubeconfig") }

// KubeContext is the context kind names in Kubeconfig, its current one.
func (c *Cluster) KubeContext() string { return "kind-" + c.Plan.Cluster }

// attachEvery is how often Up looks for node containers to attach.
const attachEvery = 100 * time.Millisecond

// Up builds the scenario's network with every host adopted, creates the
// kind cluster while attaching each node container to its host as soon
// as it runs (its entrypoint waits for that), gives each node its pod
// /24, and returns once every node is Ready. On a failure after the
// network exists it returns the cluster with the error, left for
// inspection (Down removes it).
func Up(ctx context.Context, sc *scenarios.Scenario, o Options) (*Cluster, error) {
	plan, err := NewPlan(sc)
	if err != nil {
		return nil, err
	}
	if err := netlab.Install(ctx, o.Log); err != nil {
		return nil, err
	}
	net, err := netlab.UpWith(ctx, o.Log, sc, filepath.Join(o.StateDir, "netlab"), plan.Options)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Plan: plan, Net: net, log: o.Log, dir: o.StateDir, mgmt: plan.Nodes[0].Container}
	spec, err := plan.Spec(o.Image, filepath.Join(o.StateDir, "kind"), o.Wait)
	if err == nil {
		err = plan.addMemberDirs(&spec, o.StateDir)
	}
	if err != nil {
		return c, err
	}
	attachCtx, stop := context.WithCancel(ctx)
	attached := make(chan error, 1)
	go func() { attached <- c.attachAll(attachCtx) }()
	err = cluster.Create(ctx, o.Log, spec)
	stop()
	if aerr := <-attached; aerr != nil && !(err != nil && errors.Is(aerr, context.Canceled)) {
		err = errors.Join(err, aerr)
	}
	if err != nil {
		return c, err
	}
	if err := c.assignPodCIDRs(ctx); err != nil {
		return c, err
	}
	return c, c.WaitReady(ctx, o.Wait)
}

// attachAll attaches every node container to its lab host as soon as it
// runs, until all are attached or ctx ends.
func (c *Cluster) attachAll(ctx context.Context) error {
	pending := map[string]string{} // container → node
	for _, n := range c.Plan.Nodes {
		pending[n.Container] = n.Name
	}
	for len(pending) > 0 {
		pids, err := runningPIDs(ctx, c.Plan.Cluster)
		if err != nil && ctx.Err() == nil {
			c.log.Debug("listing node containers", "err", err)
		}
		for name, ct := range pids {
			node, ok := pending[name]
			if !ok {
				continue
			}
			if err := c.Net.AttachHost(ctx, node, ct.pid); err != nil {
				return err
			}
			c.log.Info("node container on the lab", "node", node, "container", name, "after", time.Since(ct.started).Round(time.Millisecond))
			delete(pending, name)
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kind: node containers never attached to the lab: %s: %w", strings.Join(slices.Sorted(maps.Keys(pending)), ", "), ctx.Err())
		case <-time.After(attachEvery):
		}
	}
	return nil
}

// Attach attaches every running node container to its lab host again
// (after a container restarted, its network namespace is a new one).
func (c *Cluster) Attach(ctx context.Context) error {
	pids, err := runningPIDs(ctx, c.Plan.Cluster)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range c.Plan.Nodes {
		if ct, ok := pids[n.Container]; ok {
			errs = append(errs, c.Net.AttachHost(ctx, n.Name, ct.pid))
		}
	}
	return errors.Join(errs...)
}

// running is a running container's main process and start.
type running struct {
	pid     int
	started time.Time
}

// runningPIDs maps the running containers of a kind cluster to their
// main process.
func runningPIDs(ctx context.Context, clusterName string) (map[string]running, error) {
	out, err := docker.Run(ctx, "ps", "--quiet", "--filter", "label="+cluster.ClusterLabel+"="+clusterName, "--filter", "status=running")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil, nil
	}
	out, err = docker.Run(ctx, append([]string{"inspect", "--format", "{{.Name}} {{.State.Pid}} {{.State.StartedAt}}"}, ids...)...)
	if err != nil {
		return nil, err
	}
	cts := map[string]running{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil || pid <= 0 {
			continue
		}
		started, _ := time.Parse(time.RFC3339Nano, f[2])
		cts[strings.TrimPrefix(f[0], "/")] = running{pid: pid, started: started}
	}
	return cts, nil
}

// assignPodCIDRs records each node's pod /24 (its CNI configuration's) in
// its Node object, where kube-proxy and others look for it.
func (c *Cluster) assignPodCIDRs(ctx context.Context) error {
	for _, n := range c.Plan.Nodes {
		patch := fmt.Sprintf(`{"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, n.PodCIDR, n.PodCIDR)
		if out, err := c.Kubectl(ctx, nil, "patch", "node", n.Name, "--type", "merge", "--patch", patch); err != nil {
			return fmt.Errorf("kind: pod CIDR of %s: %w: %s", n.Name, err, out)
		}
	}
	return nil
}

// Kubectl runs kubectl with the cluster's admin kubeconfig in a
// control-plane node (docker exec: management stays off the lab; the
// node's load balancer reaches the API servers over it). When the API
// does not answer there, it moves to the first control-plane node where
// it does and runs the command again.
//
// A request an API server refused while it started (RBAC not loaded yet:
// "Forbidden: unknown"; no discovery; refused connections) was not
// carried out, so it is made again, for up to apiWait: a node's load
// balancer that has just started itself takes every API server for up
// until its first checks, and a conformance run's worker restart failed
// on a control-plane node's API server 1 s into its start.
func (c *Cluster) Kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	deadline := time.Now().Add(apiWait)
	for {
		out, err := c.kubectlOnce(ctx, stdin, args...)
		if err == nil || !notCarriedOut(err, out) || time.Now().After(deadline) {
			return out, err
		}
		c.log.Debug("kubectl: an API server not ready refused the request; again", "args", args, "err", err)
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

// notCarriedOut says whether kubectl failed on an API server that was not
// ready, before the request was carried out. A timeout is not one: the
// request may have been carried out.
func notCarriedOut(err error, out []byte) bool {
	msg := err.Error() + "\n" + string(out)
	if strings.Contains(msg, "because it is being terminated") { // a real Forbidden
		return false
	}
	for _, s := range []string{
		"couldn't get current server API group list",
		"Error from server (Forbidden)", // the admin's credentials: only while RBAC loads
		"connect: connection refused",
		"Error from server (ServiceUnavailable)",
		"the server is currently unable to handle the request",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// kubectlOnce runs kubectl in the management node, or, when no API server
// answers there, in the first control-plane node where one does.
func (c *Cluster) kubectlOnce(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	c.mu.Lock()
	cur := c.mgmt
	c.mu.Unlock()
	out, err := kubectlIn(ctx, cur, stdin, args...)
	if err == nil || apiAnswers(ctx, cur) {
		return out, err
	}
	// No control plane answers (they are powered off, or coming back
	// from it): wait for one, as a client of the cluster would.
	deadline := time.Now().Add(apiWait)
	for first := true; ; first = false {
		for _, n := range c.Plan.ControlPlanes() {
			// cur just failed: the first pass asks the others
			if (!first || n.Container != cur) && apiAnswers(ctx, n.Container) {
				c.mu.Lock()
				c.mgmt = n.Container
				c.mu.Unlock()
				if n.Container != cur {
					c.log.Info("kubectl moves to another control-plane node", "from", cur, "to", n.Container)
				}
				return kubectlIn(ctx, n.Container, stdin, args...)
			}
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%w (no API server answered for %s)", err, apiWait)
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

// apiWait bounds how long Kubectl waits for some API server to answer
// when none does.
const apiWait = 3 * time.Minute

// kubectlIn runs kubectl in a node container.
func kubectlIn(ctx context.Context, container string, stdin []byte, args ...string) ([]byte, error) {
	return docker.RunInput(ctx, stdin, append([]string{"exec", "-i", container, "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf"}, args...)...)
}

// apiAnswers says whether the API is ready as seen from a node container.
func apiAnswers(ctx context.Context, container string) bool {
	out, err := kubectlIn(ctx, container, nil, "get", "--raw=/readyz", "--request-timeout=5s")
	return err == nil && strings.TrimSpace(string(out)) == "ok"
}

// Ready maps every node of the cluster to whether it is Ready.
func (c *Cluster) Ready(ctx context.Context) (map[string]bool, error) {
	out, err := c.Kubectl(ctx, nil, "get", "nodes", "--output", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	ready := map[string]bool{}
	for _, it := range list.Items {
		for _, cond := range it.Status.Conditions {
			if cond.Type == "Ready" {
				ready[it.Metadata.Name] = cond.Status == "True"
			}
		}
	}
	return ready, nil
}

// WaitReady returns once every node of the plan is Ready.
func (c *Cluster) WaitReady(ctx context.Context, wait time.Duration) error {
	return c.waitReady(ctx, wait, nil)
}

// waitReady returns once every node of the plan but those in off is
// Ready.
func (c *Cluster) waitReady(ctx context.Context, wait time.Duration, off map[string]bool) error {
	deadline := time.Now().Add(wait)
	for {
		ready, err := c.Ready(ctx)
		var not []string
		for _, n := range c.Plan.Nodes {
			if !off[n.Name] && !ready[n.Name] {
				not = append(not, n.Name)
			}
		}
		if err == nil && len(not) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kind: nodes not Ready after %s: %s (%v)", wait, strings.Join(not, ", "), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Down removes the cluster whose state is in stateDir — kind's node
// containers, the lab network, the nodes' files — also after a crash.
// kind's docker network goes too unless another cluster uses it.
func Down(ctx context.Context, log *slog.Logger, stateDir string) error {
	net, err := netlab.Load(log, filepath.Join(stateDir, "netlab"))
	if err != nil {
		return fmt.Errorf("kind: no lab in %s: %w", stateDir, err)
	}
	kindDir := filepath.Join(stateDir, "kind")
	var errs []error
	// containers first: their namespaces stay pinned by the lab's names
	// until netlab lets them go
	errs = append(errs, cluster.Delete(log, ClusterPrefix+net.Name(), kindDir))
	errs = append(errs, net.Down(ctx))
	if _, err := docker.Run(ctx, "network", "rm", cluster.NetworkName); err != nil {
		log.Debug("kind's docker network stays", "err", err)
	}
	errs = append(errs, os.RemoveAll(kindDir))
	return errors.Join(errs...)
}
