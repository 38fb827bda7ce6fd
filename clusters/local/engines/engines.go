// Package engines holds what every engine of the local lab shares: the
// description of a service's members on their hosts and the status an
// engine reports (installing Debian packages is package install's). Each
// engine (etcd, zookeeper, galera, redis, kafka, docstore) is its own
// package under this one.
package engines

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/lab"
)

// Member is one member of a service on its lab host.
type Member struct {
	// Index is the member number (member 0 first, as placed by the spec).
	Index int `json:"index"`
	// Name is unique in the lab, e.g. "galera-1".
	Name string `json:"name"`
	// Node is the scenario node the member runs on.
	Node string `json:"node"`
	// NetNS is the host's network namespace ("" = the caller's, used by
	// tests on loopback addresses).
	NetNS string `json:"netns,omitempty"`
	// Addr is the host's address; members bind it with their usual ports.
	Addr netip.Addr `json:"addr"`
	// DataDir holds the member's data (wiped by destroy); LogDir its logs.
	DataDir string `json:"dataDir"`
	LogDir  string `json:"logDir"`
	// Cgroup is the node's cgroup v2 directory ("" = none).
	Cgroup string `json:"cgroup,omitempty"`
	// PortOffset is added to every port the member listens on and is
	// reached at; 0 in the labs. On a real cluster a member shares its
	// node's network with K3S's own datastore and the adopter's engines,
	// so chaosloop's members keep away from their ports.
	PortOffset int `json:"portOffset,omitempty"`
	// ListenLoopback has the member take its clients' connections on
	// 127.0.0.1 too: on a real cluster chaosloop reaches a member through
	// a port-forward of its pod, which the kubelet opens on the loopback
	// address of the pod's network namespace (the node's, for a
	// hostNetwork pod).
	ListenLoopback bool `json:"listenLoopback,omitempty"`
}

// Port is the member's port for its engine's usual port p (etcd's 2379).
func (m Member) Port(p uint16) uint16 { return uint16(int(p) + m.PortOffset) }

// AddrPort is the member's address with Port(p).
func (m Member) AddrPort(p uint16) netip.AddrPort { return netip.AddrPortFrom(m.Addr, m.Port(p)) }

// Cluster is one service's members.
type Cluster struct {
	Service string   `json:"service"`
	Members []Member `json:"members"`
	// StateDir is where process records live (see package proc).
	StateDir string `json:"stateDir"`
	// Launcher, when set, starts and ends the members' processes (the kind
	// backend's pods); unset, they are processes on the lab host (Procs).
	Launcher Launcher `json:"-"`
	// Dial, when set, opens the connections an engine makes to its members
	// (status probes): the lab dials from inside the member's own host
	// namespace, since the lab's addresses are not routed from the caller's.
	Dial DialFunc `json:"-"`
	// Files, when set, reaches the members' directories on their nodes
	// (a real cluster's); unset, they are on this machine (HostFiles: the
	// local lab's hosts, and kind's nodes, which see the lab's state
	// directory at the same paths).
	Files Files `json:"-"`
}

// Files are the members' files on their nodes, what an engine looks at
// and makes before it starts a member there.
type Files interface {
	// MkdirAll makes dir and its parents on m's node, as os.MkdirAll.
	MkdirAll(ctx context.Context, m Member, dir string, perm os.FileMode) error
	// Exists says whether path exists on m's node.
	Exists(ctx context.Context, m Member, path string) (bool, error)
	// WriteFile writes data to path on m's node, as os.WriteFile.
	WriteFile(ctx context.Context, m Member, path string, data []byte, perm os.FileMode) error
	// ReadFile reads path on m's node, as os.ReadFile (an error wrapping
	// os.ErrNotExist when it is not there).
	ReadFile(ctx context.Context, m Member, path string) ([]byte, error)
}

// Remote says the members' files are on a real cluster's nodes, not on
// this machine: an engine reaches its members over TCP (Dialer), never
// through a unix socket or a path here.
func (c *Cluster) Remote() bool { return c.Files != nil }

// FS is c.Files, or HostFiles when unset.
func (c *Cluster) FS() Files {
	if c.Files != nil {
		return c.Files
	}
	return HostFiles{}
}

// HostFiles are files on this machine.
type HostFiles struct{}

// MkdirAll is os.MkdirAll.
func (HostFiles) MkdirAll(_ context.Context, _ Member, dir string, perm os.FileMode) error {
	return os.MkdirAll(dir, perm)
}

// Exists stats path.
func (HostFiles) Exists(_ context.Context, _ Member, path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// WriteFile is os.WriteFile.
func (HostFiles) WriteFile(_ context.Context, _ Member, path string, data []byte, perm os.FileMode) error {
	return os.WriteFile(path, data, perm)
}

// ReadFile is os.ReadFile.
func (HostFiles) ReadFile(_ context.Context, _ Member, path string) ([]byte, error) {
	return os.ReadFile(path)
}

// DialFunc opens a connection, like net.Dialer.DialContext.
type DialFunc = lab.DialFunc

// Dialer returns c.Dial, or a plain net.Dialer's when unset.
func (c *Cluster) Dialer() DialFunc {
	if c.Dial != nil {
		return c.Dial
	}
	var d net.Dialer
	return d.DialContext
}

// MemberStatus is what an engine observed of one member.
type MemberStatus struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Up: the process runs and answers.
	Up bool `json:"up"`
	// Role: leader, follower, primary, replica, sync-standby, ..., or "".
	Role string `json:"role,omitempty"`
	// Healthy: the member is part of a working cluster (in quorum, synced).
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	// TimedOut: the member's process runs but the probe ran out of time
	// before it answered. That is no evidence of its state (a slow member
	// on a busy machine is not a down one): it is neither Up nor Healthy,
	// and whatever depends on its answer is unknown.
	TimedOut bool `json:"timedOut,omitempty"`
}

// Status is a service's observed state.
type Status struct {
	Engine  string         `json:"engine"`
	Version string         `json:"version"`
	Members []MemberStatus `json:"members"`
	// Writable: the service accepts writes right now (quorum, Primary, ...).
	Writable bool `json:"writable"`
}

// ErrTimeout is wrapped by WaitFor when the condition never held.
var ErrTimeout = errors.New("timed out")

// WaitFor polls cond every interval until it returns nil, ctx ends or
// timeout passes; the last error from cond explains a timeout.
func WaitFor(ctx context.Context, timeout, interval time.Duration, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w after %s: %v", what, ErrTimeout, timeout, last)
		case <-time.After(interval):
		}
	}
}

// OneLeader returns nil when every member is Up and Healthy under exactly
// one leader (a Raft or Zab ensemble at rest), or an error saying what is
// not.
func (st Status) OneLeader() error {
	leaders := 0
	for _, m := range st.Members {
		if !m.Up || !m.Healthy {
			return fmt.Errorf("%s not healthy: %s", m.Name, m.Detail)
		}
		if m.Role == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d leaders: %s", leaders, st.Summary())
	}
	return nil
}

// Summary is one line per member, for errors and logs.
func (st Status) Summary() string {
	var b strings.Builder
	for i, m := range st.Members {
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s up=%v healthy=%v role=%s %s", m.Name, m.Up, m.Healthy, m.Role, m.Detail)
	}
	return b.String()
}

// Member returns member i; an index out of range is an error naming the
// service, so that a fault on a member that does not exist says so.
func (c *Cluster) Member(i int) (Member, error) {
	if i < 0 || i >= len(c.Members) {
		return Member{}, fmt.Errorf("%s: no member %d", c.Service, i)
	}
	return c.Members[i], nil
}

// StopAll stops every member at once with stop and joins the errors: the
// members of a cluster going away together need no order.
func StopAll(c *Cluster, stop func(i int) error) error {
	errs := make([]error, len(c.Members))
	var wg sync.WaitGroup
	for i := range c.Members {
		wg.Go(func() { errs[i] = stop(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StopLastFirst stops the members one at a time, the last first, so that
// member 0 (the primary, or the member to bootstrap from) stops last.
func StopLastFirst(c *Cluster, stop func(i int) error) error {
	var errs []error
	for i := len(c.Members) - 1; i >= 0; i-- {
		errs = append(errs, stop(i))
	}
	return errors.Join(errs...)
}
