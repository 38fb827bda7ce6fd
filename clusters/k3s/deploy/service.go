package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/probe"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Engine is what deploy mode needs of an engine.
type Engine interface {
	// Start starts every member not running and returns once the
	// service is healthy.
	Start(ctx context.Context, c *engines.Cluster) error
	// StartMember starts member i if it does not run (after a kill or a
	// power cycle), and does not wait for it to be healthy.
	StartMember(ctx context.Context, c *engines.Cluster, i int) error
	Status(ctx context.Context, c *engines.Cluster) (engines.Status, error)
}

// Options say how services are deployed.
type Options struct {
	Cluster  *k3s.Cluster
	Scenario string
	NodeMap  k3s.NodeMap
	// Image names an engine's image in the user's registry (by the
	// engine image's name: "etcd", "kafka"); nil only to observe members,
	// never to start one.
	Image func(engine string) (string, error)
	// PortOffset is added to the engines' ports (the CLI's default is
	// DefaultPortOffset).
	PortOffset int
	Log        *slog.Logger
	// Relays, when set, reach the members through the agents of their
	// nodes (one session per node, a stream per connection) rather than a
	// port-forward of their pods (a TLS connection, an upgrade and a pod
	// list per connection: under a run's load the probes, a connection
	// each every 400 ms, could not keep up on the kind test cluster).
	Relays *agent.Relays
}

// Service is a scenario's service deployed on the cluster: its engine
// and its members (Cluster), each a pod on its node (Pods) whose files
// are reached through the node's agent (NodeFiles) and whose ports
// through port-forwards of its pods (a hostNetwork pod's forward lands in
// its node's network namespace).
type Service struct {
	Topo    *topology.Service
	Engine  Engine
	Cluster *engines.Cluster
}

// MemberName names member i of a service, as the local lab does.
func MemberName(service string, i int) string { return service + "-" + strconv.Itoa(i) }

// selector selects the scenario's owned objects with the extra
// requirements ("key=value", "!key").
func selector(scenario string, extra ...string) (string, error) {
	sel, err := k3s.OwnedSelector(scenario)
	if err != nil {
		return "", err
	}
	return strings.Join(append([]string{sel}, extra...), ","), nil
}

// MemberSelector selects the pods of a scenario's member that run its
// processes (not its one-shot commands').
func MemberSelector(scenario, member string) (string, error) {
	return selector(scenario, LabelMember+"="+PodName(member), "!"+LabelOnce)
}

// New describes sv's deployment: member i on the cluster node of the
// scenario's node, at its InternalIP, its files under Root(scenario).
// It starts nothing.
func New(ctx context.Context, o Options, sv *topology.Service) (*Service, error) {
	kind, err := kindOf(sv)
	if err != nil {
		return nil, err
	}
	var image string
	if o.Image != nil {
		if image, err = o.Image(kind.image); err != nil {
			return nil, err
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c, err := onNodes(ctx, o, sv, image)
	if err != nil {
		return nil, err
	}
	zk, err := zooKeeperOf(ctx, o, sv)
	if err != nil {
		return nil, err
	}
	return &Service{Topo: sv, Engine: kind.make(o.Log, sv, zk), Cluster: c}, nil
}

// zooKeeperOf is a Kafka's connect string in ZooKeeper mode: its
// ensemble's members where chaosloop deploys them; "" for any other.
func zooKeeperOf(ctx context.Context, o Options, sv *topology.Service) (string, error) {
	zk := sv.ControllerService
	if sv.Kind != scenarios.KindKafka || zk == nil {
		return "", nil
	}
	ms, err := members(ctx, o, zk)
	if err != nil {
		return "", err
	}
	eps := zookeeper.New(o.Log).Endpoints(&engines.Cluster{Service: zk.Name, Members: ms})
	return local.ZooKeeperConnect(eps, sv.Name), nil
}

// members are sv's members on their nodes: member i on the cluster node
// of the scenario's node, at its InternalIP, its files under
// Root(scenario).
func members(ctx context.Context, o Options, sv *topology.Service) ([]engines.Member, error) {
	var ms []engines.Member
	for i, n := range sv.Members {
		addr, err := internalIP(ctx, o.Cluster, o.NodeMap.ClusterNode(n.Name))
		if err != nil {
			return nil, fmt.Errorf("service %s member %d: %w", sv.Name, i, err)
		}
		name := MemberName(sv.Name, i)
		dir := filepath.Join(Root(o.Scenario), name)
		ms = append(ms, engines.Member{Index: i, Name: name, Node: n.Name, Addr: addr, PortOffset: o.PortOffset,
			ListenLoopback: true, DataDir: filepath.Join(dir, "data"), LogDir: filepath.Join(dir, "log")})
	}
	return ms, nil
}

// onNodes places sv's members on their nodes (members), their
// processes pods from image.
func onNodes(ctx context.Context, o Options, sv *topology.Service, image string) (*engines.Cluster, error) {
	ms, err := members(ctx, o, sv)
	if err != nil {
		return nil, err
	}
	c := &engines.Cluster{Service: sv.Name, Members: ms}
	c.Launcher = &Pods{Cluster: o.Cluster, Scenario: o.Scenario, Service: sv.Name, Image: image, NodeMap: o.NodeMap, Log: o.Log}
	c.Files = NodeFiles{Cluster: o.Cluster, Scenario: o.Scenario, NodeMap: o.NodeMap}
	if o.Relays != nil {
		c.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			return relayToMember(ctx, o, c, network, address)
		}
		return c, nil
	}
	fwd := &probe.Forwarder{Cluster: o.Cluster, Namespace: k3s.Namespace, Log: o.Log}
	// a member's pod is found when it is dialed: it is made anew on each start
	fwd.PodOf = func(ctx context.Context, addr netip.Addr) (string, error) { return memberPodAt(ctx, o, c, addr) }
	c.Dial = fwd.Dial
	return c, nil
}

// relayToMember dials a member's address from its own node, through the
// node's agent: only the member's own state decides whether it answers,
// whatever cuts its node off its peers.
func relayToMember(ctx context.Context, o Options, c *engines.Cluster, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	for _, m := range c.Members {
		if m.Addr == ap.Addr() {
			return o.Relays.Dial(ctx, o.NodeMap.ClusterNode(m.Node), network, address)
		}
	}
	return nil, fmt.Errorf("dial %s: no member of %s has address %s", address, c.Service, ap.Addr())
}

// internalIP is a cluster node's InternalIP: where its hostNetwork pods
// listen.
func internalIP(ctx context.Context, c *k3s.Cluster, node string) (netip.Addr, error) {
	n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("node %s: %w", node, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s has no InternalIP", node)
}

// memberPodAt is the running pod of the member at addr, through which a
// connection to it is forwarded.
func memberPodAt(ctx context.Context, o Options, c *engines.Cluster, addr netip.Addr) (string, error) {
	for _, m := range c.Members {
		if m.Addr != addr {
			continue
		}
		sel, err := MemberSelector(o.Scenario, m.Name)
		if err != nil {
			return "", err
		}
		list, err := o.Cluster.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return "", err
		}
		for _, p := range list.Items {
			if State(&p) == "running" {
				return p.Name, nil
			}
		}
		return "", fmt.Errorf("member %s has no running pod", m.Name)
	}
	return "", fmt.Errorf("no member of %s has address %s", c.Service, addr)
}

// Start starts every member that does not run and returns once the
// service is healthy.
func (s *Service) Start(ctx context.Context) error { return s.Engine.Start(ctx, s.Cluster) }

// Status observes the members with the engine's probe.
func (s *Service) Status(ctx context.Context) (engines.Status, error) {
	return s.Engine.Status(ctx, s.Cluster)
}

// Restart starts member i again if it does not run (after a kill or a
// power cycle): its data is on its node, so it rejoins with it.
func (s *Service) Restart(ctx context.Context, i int) error {
	return s.Engine.StartMember(ctx, s.Cluster, i)
}

// Close ends the engine's client connections.
func (s *Service) Close() error {
	if c, ok := s.Engine.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// Wipe removes member i's files from its node (its data and logs), as a
// destroyed node's disks lose them; it starts nothing.
func (s *Service) Wipe(ctx context.Context, i int) error {
	if i < 0 || i >= len(s.Cluster.Members) {
		return fmt.Errorf("service %s has no member %d", s.Cluster.Service, i)
	}
	f, ok := s.Cluster.Files.(NodeFiles)
	if !ok {
		return fmt.Errorf("service %s: its members' files are not on cluster nodes", s.Cluster.Service)
	}
	return f.RemoveMember(ctx, s.Cluster.Members[i])
}

// Reset starts member i anew after its node was powered off: whatever pod
// of it the API server still shows Running died with the node, so each
// is deleted before the member starts again.
func (s *Service) Reset(ctx context.Context, i int) error {
	if i < 0 || i >= len(s.Cluster.Members) {
		return fmt.Errorf("service %s has no member %d", s.Cluster.Service, i)
	}
	pods, ok := s.Cluster.Launcher.(*Pods)
	if !ok {
		return s.Restart(ctx, i)
	}
	names, err := pods.Processes(ctx, s.Cluster.Members[i])
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := pods.remove(ctx, n, 0); err != nil {
			return fmt.Errorf("member %s: %w", s.Cluster.Members[i].Name, err)
		}
	}
	return s.Restart(ctx, i)
}

// PlanObjects are the pods a run creates for the services of topo that
// chaosloop deploys (those not attached and Deployable): one per member
// process, named as Pods names it; and when the run drives the load
// (load), a worker pod per member of each stateless service not attached.
// image is the engine's image, "" when no registry was named.
func PlanObjects(topo *topology.Topology, nm k3s.NodeMap, image func(engine string) (string, error), portOffset int, load bool) []k3s.Object {
	var out []k3s.Object
	for _, sv := range topo.Services {
		if sv.Spec.Attach != nil {
			continue
		}
		if sv.Kind == scenarios.KindStateless && load {
			for i, n := range sv.Members {
				m := engines.Member{Index: i, Name: MemberName(sv.Name, i), Node: n.Name}
				out = append(out, k3s.Object{Kind: "Pod", Namespace: k3s.Namespace, Name: PodName(workerName(m)),
					Purpose: fmt.Sprintf("worker %d of service/%s (the run's transfer handler, %s in the agents' image) on node/%s, in its network; its configuration in %s there",
						i, sv.Name, WorkerBinary, nm.ClusterNode(n.Name), filepath.Join(Root(topo.Name), m.Name, "data", "worker"))})
			}
			continue
		}
		kind, err := kindOf(sv)
		if err != nil {
			continue
		}
		from := "the " + kind.image + " image in --registry"
		if image != nil {
			if ref, err := image(kind.image); err == nil {
				from = ref
			}
		}
		for i, n := range sv.Members {
			m := engines.Member{Index: i, Name: MemberName(sv.Name, i), Node: n.Name}
			for _, p := range kind.processes(m) {
				out = append(out, k3s.Object{Kind: "Pod", Namespace: k3s.Namespace, Name: PodName(p),
					Purpose: fmt.Sprintf("member %d of service/%s (%s, from %s) on node/%s, in its network at ports %s; its files in %s there",
						i, sv.Name, local.EngineOf(sv.Spec), from, nm.ClusterNode(n.Name), portList(kind.ports, portOffset), filepath.Join(Root(topo.Name), m.Name))})
			}
		}
	}
	return out
}

// Observe is a service chaosloop deployed as the cluster runs it: its
// members' pods (member i's labelled with its name), where each runs
// against where the scenario places it, and its engine probed at the
// ports the pods were started with. It only reads.
func Observe(ctx context.Context, c *k3s.Cluster, topo *topology.Topology, nm k3s.NodeMap, sv *topology.Service, log *slog.Logger) (k3s.AttachedService, error) {
	// a member's first process stands for it (Redis: its redis-server)
	var mains []string
	if kind, err := kindOf(sv); err == nil {
		for i := range sv.Members {
			mains = append(mains, PodName(kind.processes(engines.Member{Name: MemberName(sv.Name, i)})[0]))
		}
	}
	sel, err := selector(topo.Name, LabelService+"="+PodName(sv.Name), componentLabel+"="+ComponentMember,
		LabelProcess+" in ("+strings.Join(mains, ",")+")")
	if err != nil {
		return k3s.AttachedService{}, err
	}
	number := func(items []corev1.Pod, k int) int {
		n, err := strconv.Atoi(strings.TrimPrefix(items[k].Labels[LabelMember], PodName(sv.Name)+"-"))
		if err != nil {
			return -1
		}
		return n
	}
	as, err := k3s.MemberPods(ctx, c, sv, nm, k3s.Namespace, sel, number)
	if err != nil {
		return as, err
	}
	list, err := c.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return as, err
	}
	offset := -1
	for _, p := range list.Items {
		if n, err := strconv.Atoi(p.Annotations[AnnotationPortOffset]); err == nil {
			offset = n
		}
	}
	if offset < 0 {
		as.NotProbed = "no member pod says its ports (" + AnnotationPortOffset + ")"
		return as, nil
	}
	d, err := New(ctx, Options{Cluster: c, Scenario: topo.Name, NodeMap: nm, PortOffset: offset, Log: log}, sv)
	if err != nil {
		as.NotProbed = err.Error()
		return as, nil
	}
	defer d.Close()
	st, err := d.Status(ctx)
	if err != nil {
		as.NotProbed = err.Error()
		return as, nil
	}
	as.Engine = &st
	return as, nil
}

// At says whether a member of the service is at addr (its node's).
func (s *Service) At(addr netip.Addr) bool {
	return slices.ContainsFunc(s.Cluster.Members, func(m engines.Member) bool { return m.Addr == addr })
}

// Serves says whether a member of the service listens at ap: its node's
// address, one of its engine's ports plus the member's offset.
func (s *Service) Serves(ap netip.AddrPort) bool {
	kind, err := kindOf(s.Topo)
	if err != nil {
		return false
	}
	for _, m := range s.Cluster.Members {
		if m.Addr != ap.Addr() {
			continue
		}
		for _, p := range kind.ports {
			if m.Port(p) == ap.Port() {
				return true
			}
		}
	}
	return false
}
