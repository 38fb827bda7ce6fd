package kindlab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// A control-plane node's etcd keeps its data on the host (etcdDir, mounted
// at etcdDataDir), so that destroy loses it as it loses the members' data.
// Such a node cannot simply start again: etcd refuses an existing member
// with no data ("member ... has already been bootstrapped"), and the first
// node's manifest (kubeadm init's) would even bootstrap a new, empty
// cluster of one. PowerOn therefore does what an operator does after
// replacing a control-plane node's disk, before the node starts: remove the
// member through the others, add it again, and start it as a new member of
// the existing cluster.

// etcdDataDir is kubeadm's etcd data directory in a node.
const etcdDataDir = "/var/lib/etcd"

// etcdManifest is kubeadm's static pod manifest of a node's etcd.
const etcdManifest = "/etc/kubernetes/manifests/etcd.yaml"

// etcdPorts are etcd's client and peer ports (kubeadm's).
const etcdClientPort, etcdPeerPort = 2379, 2380

// replaceTimeout bounds the member replacement (a cluster with a quorum
// answers in milliseconds).
const replaceTimeout = time.Minute

// EtcdDir is where a control-plane node's etcd keeps its data on the host.
func EtcdDir(stateDir, node string) string { return filepath.Join(stateDir, "kubeadm-etcd", node) }

// Wipe loses what a node keeps on its disk that the lab does not: a
// control-plane node's etcd data. The directory stays (it is mounted).
func (c *Cluster) Wipe(node string) error {
	n, ok := c.Plan.Node(node)
	if !ok || !n.ControlPlane {
		return nil
	}
	dir := EtcdDir(c.dir, node)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o700)
}

// etcdWiped says whether a control-plane node's etcd lost its data: its
// directory is there (Up made it, Wipe keeps it) with no member in it.
func (c *Cluster) etcdWiped(n NodePlan) bool {
	if !n.ControlPlane || c.dir == "" {
		return false
	}
	dir := EtcdDir(c.dir, n.Name)
	if _, err := os.Stat(dir); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "member"))
	return errors.Is(err, os.ErrNotExist)
}

// rejoinEtcd replaces the etcd member of node n, off with its data lost.
// Without a quorum of the others (destroy took most control-plane nodes)
// no member can be replaced: the node's etcd is still kept from starting
// afresh, and stays out until an operator restores the cluster — which is
// what such a loss is, and what the lab then shows.
func (c *Cluster) rejoinEtcd(ctx context.Context, n NodePlan) error {
	err := c.replaceEtcdMember(ctx, n)
	if err == nil {
		return nil
	}
	c.log.Warn("etcd member not replaced: it stays out of the cluster", "node", n.Name, "err", err)
	return c.rewriteEtcdManifest(ctx, n, "")
}

// replaceEtcdMember replaces the etcd member of node n (off, its data lost)
// through the other control-plane nodes, and rewrites n's etcd manifest to
// join the cluster as it is now.
func (c *Cluster) replaceEtcdMember(ctx context.Context, n NodePlan) error {
	ctx, cancel := context.WithTimeout(ctx, replaceTimeout)
	defer cancel()
	cli, err := c.etcdClient(n.Name)
	if err != nil {
		return err
	}
	defer cli.Close()
	peer := "https://" + netip.AddrPortFrom(n.Addr, etcdPeerPort).String()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("kind: the cluster's etcd, to replace %s's member: %w", n.Name, err)
	}
	for _, m := range list.Members {
		if m.Name == n.Name || slices.Contains(m.PeerURLs, peer) {
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("kind: remove %s's etcd member %x: %w", n.Name, m.ID, err)
			}
		}
	}
	added, err := cli.MemberAdd(ctx, []string{peer})
	if err != nil {
		return fmt.Errorf("kind: add %s's etcd member again: %w", n.Name, err)
	}
	var initial []string
	for _, m := range added.Members {
		name := m.Name
		if m.ID == added.Member.ID {
			name = n.Name
		}
		for _, u := range m.PeerURLs {
			if name != "" {
				initial = append(initial, name+"="+u)
			}
		}
	}
	c.log.Info("etcd member replaced", "node", n.Name, "id", fmt.Sprintf("%x", added.Member.ID), "cluster", strings.Join(initial, ","))
	return c.rewriteEtcdManifest(ctx, n, strings.Join(initial, ","))
}

// rewriteEtcdManifest makes n's etcd join the existing cluster: its
// container is stopped, so the manifest goes out and back with docker cp.
func (c *Cluster) rewriteEtcdManifest(ctx context.Context, n NodePlan, initialCluster string) error {
	tmp, err := os.MkdirTemp(c.dir, ".etcd-manifest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	local := filepath.Join(tmp, "etcd.yaml")
	if _, err := docker.Run(ctx, "cp", n.Container+":"+etcdManifest, local); err != nil {
		return fmt.Errorf("kind: %s's etcd manifest: %w", n.Name, err)
	}
	b, err := os.ReadFile(local)
	if err != nil {
		return err
	}
	out, err := joinManifest(b, initialCluster)
	if err != nil {
		return fmt.Errorf("kind: %s's etcd manifest: %w", n.Name, err)
	}
	if err := os.WriteFile(local, out, 0o600); err != nil {
		return err
	}
	if _, err := docker.Run(ctx, "cp", local, n.Container+":"+etcdManifest); err != nil {
		return fmt.Errorf("kind: write %s's etcd manifest: %w", n.Name, err)
	}
	return nil
}

// joinManifest is kubeadm's etcd manifest with the flags of a member that
// joins an existing cluster (as kubeadm join writes them); an empty
// initialCluster keeps the manifest's.
func joinManifest(manifest []byte, initialCluster string) ([]byte, error) {
	var out []string
	found := false
	for _, l := range strings.Split(string(manifest), "\n") {
		flag := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(flag, "- --initial-cluster-state="):
		case strings.HasPrefix(flag, "- --initial-cluster="):
			indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
			ic := initialCluster
			if ic == "" {
				ic = strings.TrimPrefix(flag, "- --initial-cluster=")
			}
			out = append(out, indent+"- --initial-cluster="+ic, indent+"- --initial-cluster-state=existing")
			found = true
		default:
			out = append(out, l)
		}
	}
	if !found {
		return nil, errors.New("no --initial-cluster flag")
	}
	return []byte(strings.Join(out, "\n")), nil
}

// etcdClient is a client of the etcd members on the control-plane nodes
// but one, reached from their own hosts with a client certificate of the
// cluster's etcd CA.
func (c *Cluster) etcdClient(except string) (*clientv3.Client, error) {
	var eps []string
	for _, n := range c.Plan.ControlPlanes() {
		if n.Name != except {
			eps = append(eps, netip.AddrPortFrom(n.Addr, etcdClientPort).String())
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("kind: %s is the only control-plane node: its etcd data is gone with no member to rejoin", except)
	}
	tlsConf, err := EtcdClientTLS(c.dir)
	if err != nil {
		return nil, err
	}
	return EtcdClient(tlsConf, eps, c.Net.DialFromHostOf)
}

// EtcdClient is a client of the cluster's etcd members at eps, reached
// through dial (the lab's: from the members' own hosts).
func EtcdClient(tlsConf *tls.Config, eps []string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: eps, TLS: tlsConf, Logger: zap.NewNop(), DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})},
	})
}

// EtcdClientTLS is a client certificate (valid for an hour) signed by the
// etcd CA of the cluster whose lab state is in stateDir (chaosloop made
// the CA, see writePKI), trusting that CA.
func EtcdClientTLS(stateDir string) (*tls.Config, error) {
	pki := filepath.Join(stateDir, "kind", "pki")
	caPEM, err := os.ReadFile(filepath.Join(pki, "etcd", "ca.crt"))
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(pki, "etcd", "ca.key"))
	if err != nil {
		return nil, err
	}
	ca, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		return nil, err
	}
	if ca.Leaf, err = x509.ParseCertificate(ca.Certificate[0]); err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Minute)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "chaosloop"},
		NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Leaf, &k.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
