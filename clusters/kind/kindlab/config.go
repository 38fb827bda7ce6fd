package kindlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
)

// LabWait is how long a node's entrypoint waits for its lab network.
const LabWait = 120 * time.Second

// Where a node finds what chaosloop mounts for it.
const (
	nodeConfigDir = "/etc/chaosloop"
	labEnvFile    = "lab.env"
	lbConfigFile  = "apiserver-lb.cfg"
	cniFile       = "10-chaosloop.conflist"
	apiServerPort = 6443
)

// Spec writes every node's files under dir (CNI conflist, lab address,
// load balancer configuration, and the control planes' shared keys) and
// returns the kind cluster to create.
func (p *Plan) Spec(image, dir string, wait time.Duration) (cluster.Spec, error) {
	spec := cluster.Spec{
		Name: p.Cluster, Image: image, StateDir: dir, Wait: wait,
		KubeadmPatches: []string{p.clusterPatch()},
	}
	lb := p.lbConfig()
	pki, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return spec, err
	}
	for _, n := range p.Nodes {
		nodeDir := filepath.Join(dir, "nodes", n.Name)
		files := map[string]string{
			labEnvFile:   fmt.Sprintf("LAB_ADDR=%s\nLAB_ROUTE=%s\nLAB_WAIT=%d\n", n.Addr, netlab.LabPrefix(), int(LabWait.Seconds())),
			lbConfigFile: lb,
			cniFile:      cniConfig(n.PodCIDR),
		}
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return spec, err
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(nodeDir, name), []byte(content), 0o644); err != nil {
				return spec, err
			}
		}
		mounts := []cluster.Mount{
			{Host: filepath.Join(nodeDir, labEnvFile), Container: nodeConfigDir + "/" + labEnvFile},
			{Host: filepath.Join(nodeDir, lbConfigFile), Container: nodeConfigDir + "/" + lbConfigFile},
		}
		if n.ControlPlane {
			mounts = append(mounts, pki...)
		}
		spec.Nodes = append(spec.Nodes, cluster.Node{
			Labels: n.Labels, CNIConfig: filepath.Join(nodeDir, cniFile),
			KubeadmPatches: p.nodePatches(n), Mounts: mounts,
		})
	}
	return spec, nil
}

// MemberDirs are where the members on a scenario node keep their data and
// logs, laid out as in the local lab (data/<node>/<service>,
// logs/<node>/<service> under the lab's state directory).
func MemberDirs(stateDir, node string) []string {
	return []string{filepath.Join(stateDir, "data", node), filepath.Join(stateDir, "logs", node)}
}

// addMemberDirs mounts each node's MemberDirs, writable, into its
// container at the same paths: a member pod's hostPath volume on the node
// is then the host's directory, where chaosloop writes the member's
// configuration, and what the member writes there outlives its node
// container (a power-off keeps it; wiping it is destroy's). A
// control-plane node's etcd data is on the host too (EtcdDir).
func (p *Plan) addMemberDirs(spec *cluster.Spec, stateDir string) error {
	for i, n := range p.Nodes {
		for _, d := range MemberDirs(stateDir, n.Name) {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			spec.Nodes[i].Mounts = append(spec.Nodes[i].Mounts, cluster.Mount{Host: d, Container: d, Writable: true})
		}
		if n.ControlPlane {
			d := EtcdDir(stateDir, n.Name)
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			spec.Nodes[i].Mounts = append(spec.Nodes[i].Mounts, cluster.Mount{Host: d, Container: etcdDataDir, Writable: true})
		}
	}
	return nil
}

// EtcdReadyCheckTimeout bounds an API server's check of its etcd in
// /readyz (2 s by default): chaosloop samples the API's availability with
// /readyz, and a probe must answer within the lab's status timeout.
const EtcdReadyCheckTimeout = "1s"

// clusterPatch points every kubeconfig kubeadm writes at the node's own
// load balancer, and leaves node CIDRs to chaosloop (each node's /24 is
// fixed by its CNI configuration; the controller would hand them out in
// join order).
func (p *Plan) clusterPatch() string {
	return fmt.Sprintf(`kind: ClusterConfiguration
controlPlaneEndpoint: "127.0.0.1:%d"
controllerManager:
  extraArgs:
    allocate-node-cidrs: "false"
apiServer:
  extraArgs:
    etcd-readycheck-timeout: "%s"
`, LBPort, EtcdReadyCheckTimeout)
}

// nodePatches name the node after the scenario's and put its kubelet, and
// its API server and etcd on a control-plane node, on its lab address.
// Control-plane nodes other than the first are kind workers joined as
// control planes (see README: kind would otherwise put an external load
// balancer container, from an image not built here, in front of them).
func (p *Plan) nodePatches(n NodePlan) []string {
	reg := fmt.Sprintf(`nodeRegistration:
  name: %q
  kubeletExtraArgs:
    node-ip: %q
`, n.Name, n.Addr)
	join := "kind: JoinConfiguration\n" + reg + fmt.Sprintf(`discovery:
  bootstrapToken:
    apiServerEndpoint: "127.0.0.1:%d"
`, LBPort)
	if n.ControlPlane {
		join += fmt.Sprintf(`controlPlane:
  localAPIEndpoint:
    advertiseAddress: %q
    bindPort: %d
`, n.Addr, apiServerPort)
	}
	patches := []string{join}
	if n.Name == p.Nodes[0].Name {
		patches = append(patches, "kind: InitConfiguration\n"+reg+fmt.Sprintf(`localAPIEndpoint:
  advertiseAddress: %q
  bindPort: %d
`, n.Addr, apiServerPort))
	}
	return patches
}

// lbConfig is haproxy's configuration on every node: TCP to every API
// server's lab address, checked on /readyz (an API server that lost its
// etcd is out), sessions to a server that goes down cut at once so that
// watches move to a live one.
func (p *Plan) lbConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# chaosloop: the node's load balancer over every API server's lab address
global
  maxconn 2000

defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h

frontend apiserver
  bind 127.0.0.1:%d
  default_backend apiservers

backend apiservers
  option httpchk GET /readyz
  http-check expect status 200
  default-server check check-ssl verify none inter 2s fall 2 rise 1 on-marked-down shutdown-sessions
`, LBPort)
	for _, n := range p.ControlPlanes() {
		fmt.Fprintf(&b, "  server %s %s\n", n.Name, netip.AddrPortFrom(n.Addr, apiServerPort))
	}
	return b.String()
}

// cniConfig is a node's CNI conflist: a bridge with the node's pod /24
// (no masquerading: pods reach each other and the nodes by their own
// addresses, routed over the lab) and host ports.
func cniConfig(pods netip.Prefix) string {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "chaosloop",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": pods.String()}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ") // plain maps: cannot fail
	return string(b) + "\n"
}
