// Package cluster creates and deletes kind clusters from chaosloop's own
// node image, with sigs.k8s.io/kind as a library (docker provider): on the
// docker network chaosloop made inside 198.19.240.0/20 (never kind's own,
// which has an IPv6 ULA subnet), without kind's CNI (kindnetd is not
// built here) and with the kubelet settings this cgroup v1 host needs.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// The addresses of every cluster: kind's docker network, the pods' and
// the Services' ranges (all inside 198.18.0.0/15, clear of the local lab's).
var (
	NetworkSubnet = netip.MustParsePrefix("198.19.240.0/24")
	PodSubnet     = netip.MustParsePrefix("198.19.128.0/20")
	ServiceSubnet = netip.MustParsePrefix("198.19.160.0/20")
)

// NetworkName is the docker network kind puts its nodes on: kind uses one
// by this name when it exists, so chaosloop makes it first.
const NetworkName = "kind"

// kubeletPatch makes kind's kubelet use the cgroupfs driver: containerd in
// the node runs runc with cgroupfs on this cgroup v1 host.
const kubeletPatch = `kind: KubeletConfiguration
cgroupDriver: cgroupfs
`

// Spec is one cluster to create.
type Spec struct {
	Name  string
	Image string // the node image, chaosloop/node:<hash>
	// Nodes: the first is the control plane, the rest workers; each has
	// its own CNI configuration file (bind-mounted into /etc/cni/net.d).
	Nodes []Node
	// StateDir holds the cluster's kubeconfig (kind would otherwise write
	// into the user's ~/.kube/config).
	StateDir string
	Wait     time.Duration // for the control plane to be Ready
	// KubeadmPatches are merge patches of every node's kubeadm
	// configuration, applied after chaosloop's own.
	KubeadmPatches []string
}

// Node is one kind node.
type Node struct {
	Labels map[string]string
	// CNIConfig is a host file mounted as the node's only CNI conflist.
	CNIConfig string
	// KubeadmPatches are merge patches of this node's kubeadm
	// configuration (kind applies them after the cluster's).
	KubeadmPatches []string
	// Mounts are more host paths mounted into the node.
	Mounts []Mount
}

// Mount is a host path mounted into a node, read-only unless Writable.
type Mount struct {
	Host, Container string
	Writable        bool
}

// Kubeconfig is where Create writes the cluster's kubeconfig.
func (s Spec) Kubeconfig() string { return filepath.Join(s.StateDir, "kubeconfig") }

// Config is the kind configuration of s.
func (s Spec) Config() *v1alpha4.Cluster {
	c := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Networking: v1alpha4.Networking{
			IPFamily:          v1alpha4.IPv4Family,
			DisableDefaultCNI: true,
			PodSubnet:         PodSubnet.String(),
			ServiceSubnet:     ServiceSubnet.String(),
		},
		KubeadmConfigPatches: append([]string{kubeletPatch}, s.KubeadmPatches...),
	}
	for i, n := range s.Nodes {
		role := v1alpha4.WorkerRole
		if i == 0 {
			role = v1alpha4.ControlPlaneRole
		}
		mounts := []v1alpha4.Mount{{HostPath: n.CNIConfig, ContainerPath: "/etc/cni/net.d/10-chaosloop.conflist", Readonly: true}}
		for _, m := range n.Mounts {
			mounts = append(mounts, v1alpha4.Mount{HostPath: m.Host, ContainerPath: m.Container, Readonly: !m.Writable})
		}
		c.Nodes = append(c.Nodes, v1alpha4.Node{
			Role: role, Image: s.Image, Labels: n.Labels,
			ExtraMounts: mounts, KubeadmConfigPatches: n.KubeadmPatches,
		})
	}
	return c
}

// ContainerNames are the names kind gives the nodes' containers, in
// Nodes order (its namer: NAME-control-plane, NAME-worker, NAME-worker2, ...).
func (s Spec) ContainerNames() []string {
	names := make([]string, len(s.Nodes))
	for i := range s.Nodes {
		switch {
		case i == 0:
			names[i] = s.Name + "-control-plane"
		case i == 1:
			names[i] = s.Name + "-worker"
		default:
			names[i] = s.Name + "-worker" + strconv.Itoa(i)
		}
	}
	return names
}

// ClusterLabel is the docker label kind puts on a cluster's containers,
// with the cluster's name.
const ClusterLabel = "io.x-k8s.kind.cluster"

// Create creates the cluster and waits for its control plane to be Ready.
func Create(ctx context.Context, log *slog.Logger, s Spec) error {
	if len(s.Nodes) == 0 {
		return errNoNodes
	}
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return err
	}
	if err := EnsureNetwork(ctx); err != nil {
		return err
	}
	RaiseInotify(log)
	p := provider(log)
	err := p.Create(s.Name,
		kindcluster.CreateWithV1Alpha4Config(s.Config()),
		kindcluster.CreateWithKubeconfigPath(s.Kubeconfig()),
		kindcluster.CreateWithWaitForReady(s.Wait),
		kindcluster.CreateWithRetain(true), // a failed cluster stays for inspection
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
	if err != nil {
		return fmt.Errorf("kind create cluster %s: %w", s.Name, err)
	}
	return nil
}

// Delete deletes the cluster's node containers (and its kubeconfig).
func Delete(log *slog.Logger, name, stateDir string) error {
	p := provider(log)
	return p.Delete(name, filepath.Join(stateDir, "kubeconfig"))
}

// EnsureNetwork makes kind's docker network inside NetworkSubnet, IPv4
// only, or checks that the one there is such.
func EnsureNetwork(ctx context.Context) error {
	out, err := docker.Run(ctx, "network", "ls", "--filter", "name=^"+NetworkName+"$", "--format", "{{.ID}}")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "" {
		gw := NetworkSubnet.Addr().Next()
		_, err := docker.Run(ctx, "network", "create", "--driver", "bridge", "--ipv6=false",
			"--subnet", NetworkSubnet.String(), "--gateway", gw.String(),
			"--label", "io.chaosloop.network=kind",
			"-o", "com.docker.network.bridge.enable_ip_masquerade=true", NetworkName)
		return err
	}
	out, err = docker.Run(ctx, "network", "inspect", NetworkName, "--format", "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 || fields[0] != "false" {
		return fmt.Errorf("docker network %q has IPv6 or no subnet (%s): remove it (docker network rm %s) and chaosloop makes its own", NetworkName, strings.TrimSpace(string(out)), NetworkName)
	}
	for _, sub := range fields[1:] {
		p, err := netip.ParsePrefix(sub)
		if err != nil || !docker.Pool().Contains(p.Addr()) {
			return fmt.Errorf("docker network %q has subnet %s, outside %s: remove it (docker network rm %s) and chaosloop makes its own", NetworkName, sub, docker.AddressPool, NetworkName)
		}
	}
	return nil
}

// inotifyInstances is what kind asks for (kind's known issues): every
// node's systemd, kubelet and containerd watch files, and the kernel's
// default of 128 instances per user runs out at a few nodes.
const inotifyInstances = 512

// RaiseInotify raises fs.inotify.max_user_instances to what kind needs
// when it is lower, and says so: it is a host-wide setting.
func RaiseInotify(log *slog.Logger) {
	const path = "/proc/sys/fs/inotify/max_user_instances"
	b, err := os.ReadFile(path)
	if err != nil {
		log.Warn("cannot read fs.inotify.max_user_instances", "err", err)
		return
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || cur >= inotifyInstances {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(inotifyInstances)), 0o644); err != nil {
		log.Warn("cannot raise fs.inotify.max_user_instances; kind nodes may fail to start", "from", cur, "err", err)
		return
	}
	log.Warn("raised the host's fs.inotify.max_user_instances for kind nodes", "from", cur, "to", inotifyInstances)
}

// errNoNodes is returned when a spec has no node.
var errNoNodes = errors.New("a cluster needs at least one node")

// CollectLogs writes kind's logs of a cluster's nodes into dir.
func CollectLogs(log *slog.Logger, name, dir string) error {
	p := provider(log)
	return p.CollectLogs(name, dir)
}

func provider(log *slog.Logger) *kindcluster.Provider {
	return kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{log}))
}
