package kindlab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Open attaches to the cluster of a scenario that is up with its state in
// o.StateDir, changing nothing.
func Open(ctx context.Context, sc *scenarios.Scenario, o Options) (*Cluster, error) {
	plan, err := NewPlan(sc)
	if err != nil {
		return nil, err
	}
	net, err := netlab.Load(o.Log, filepath.Join(o.StateDir, "netlab"))
	if err != nil {
		return nil, err
	}
	return &Cluster{Plan: plan, Net: net, log: o.Log, dir: o.StateDir, mgmt: plan.Nodes[0].Container}, nil
}

// Repair brings a cluster that is up back to what Up leaves: every node
// container that is not powered off running and attached, every node
// Ready. off are the nodes powered off, left as they are.
func (c *Cluster) Repair(ctx context.Context, off map[string]bool, wait time.Duration) error {
	pids, err := runningPIDs(ctx, c.Plan.Cluster)
	if err != nil {
		return err
	}
	for _, n := range c.Plan.Nodes {
		if _, ok := pids[n.Container]; !ok && !off[n.Name] {
			if err := c.PowerOn(ctx, n.Name); err != nil {
				return err
			}
		}
	}
	if err := c.Attach(ctx); err != nil {
		return err
	}
	return c.waitReady(ctx, wait, off)
}

// PowerOff kills a node's container at once: SIGKILL to every process in
// it, as a power cut. Docker records it as stopped by hand, so its
// restart policy does not bring it back. A node already off is no error.
func (c *Cluster) PowerOff(ctx context.Context, node string) error {
	n, ok := c.Plan.Node(node)
	if !ok {
		return fmt.Errorf("kind: no node %s", node)
	}
	if _, err := docker.Run(ctx, "kill", "--signal", "KILL", n.Container); err != nil && !strings.Contains(err.Error(), "is not running") {
		return fmt.Errorf("kind: power off %s: %w", node, err)
	}
	c.log.Info("node container killed", "node", node, "container", n.Container)
	return nil
}

// powerOnWait bounds the wait for a started node container to run.
const powerOnWait = 30 * time.Second

// PowerOn starts a node's container again and adopts its new network
// namespace as the node's lab host, which its entrypoint waits for; a
// control-plane node whose disk was wiped gets its etcd member replaced
// first (rejoin.go). The
// node's kubelet then rejoins by itself; PowerOn does not wait for it
// (with its control planes dark it never could).
func (c *Cluster) PowerOn(ctx context.Context, node string) error {
	return c.PowerOnBy(ctx, node, nil)
}

// PowerOnBy is PowerOn with the node's container started by start (a
// BMC's power-on, when an emulator powers the container) instead of
// docker start; start returns once the BMC reports the power on.
func (c *Cluster) PowerOnBy(ctx context.Context, node string, start func(context.Context) error) error {
	n, ok := c.Plan.Node(node)
	if !ok {
		return fmt.Errorf("kind: no node %s", node)
	}
	if c.etcdWiped(n) {
		if err := c.rejoinEtcd(ctx, n); err != nil {
			return err
		}
	}
	if start == nil {
		start = func(ctx context.Context) error {
			_, err := docker.Run(ctx, "start", n.Container)
			return err
		}
	}
	if err := start(ctx); err != nil {
		return fmt.Errorf("kind: power on %s: %w", node, err)
	}
	deadline := time.Now().Add(powerOnWait)
	for {
		pids, err := runningPIDs(ctx, c.Plan.Cluster)
		if ct, ok := pids[n.Container]; ok {
			if err := c.Net.AttachHost(ctx, node, ct.pid); err != nil {
				return err
			}
			c.log.Info("node container back on the lab", "node", node, "pid", ct.pid)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kind: node container %s not running %s after docker start (%v)", n.Container, powerOnWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(attachEvery):
		}
	}
}

// Exec runs a shell script in a node's container.
func (c *Cluster) Exec(ctx context.Context, node, script string) ([]byte, error) {
	n, ok := c.Plan.Node(node)
	if !ok {
		return nil, fmt.Errorf("kind: no node %s", node)
	}
	return docker.Run(ctx, "exec", n.Container, "sh", "-c", script)
}

// Cable keeps every node container attached to its lab host until ctx
// ends, as a real server's NICs stay cabled through a power cycle: a
// container started again by someone else than PowerOn (a BMC emulator
// powering it, when the cluster stands in for an adopter's) gets a new
// network namespace, which Cable attaches within every. A failed look or
// attach is logged and tried again at the next.
func (c *Cluster) Cable(ctx context.Context, every time.Duration) {
	seen := map[string]int{}
	if pids, err := runningPIDs(ctx, c.Plan.Cluster); err == nil {
		for name, ct := range pids {
			seen[name] = ct.pid
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		pids, err := runningPIDs(ctx, c.Plan.Cluster)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("cable: listing the node containers", "err", err)
			}
			continue
		}
		for _, n := range c.Plan.Nodes {
			ct, ok := pids[n.Container]
			if !ok || seen[n.Container] == ct.pid {
				continue
			}
			if err := c.Net.AttachHost(ctx, n.Name, ct.pid); err != nil {
				c.log.Warn("cable: attaching a restarted node container", "node", n.Name, "err", err)
				continue
			}
			seen[n.Container] = ct.pid
		}
	}
}
