package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/kind/cluster"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// UpWait bounds the wait for the control plane and then for every node
// to be Ready.
const UpWait = 5 * time.Minute

// imagesFile records, in a lab's state, the images its nodes and members
// run: a later chaosloop (status, a heal) starts members from them.
const imagesFile = "kind-images.json"

// engineImages names the image of each of the local lab's engines.
var engineImages = map[string]string{
	local.EngineEtcd: "etcd", local.EngineZooKeeper: "zookeeper", local.EngineGalera: "mariadb",
	local.EngineMariaDB: "mariadb", local.EngineRedis: "redis", local.EngineKafka: "kafka",
	local.EngineDocstore: "docstore",
	// a stateless service's workers: chaosloop's handlers
	local.EngineNone: images.WorkerImage,
}

// machines are a kind lab's node containers, as local.Machines.
type machines struct {
	dir   string
	log   *slog.Logger
	built *images.Built // nil for a lab opened or removed
	// power, when set, powers the nodes it lists through their BMCs
	// (Options.Power).
	power *bmc.Inventory

	mu sync.Mutex
	c  *kindlab.Cluster
	// images are the node's and engines' image tags.
	images recordedImages

	// bmcs are the controllers of power's nodes, made on first use
	// (under bmcMu: making one talks to the BMC, which must not hold mu).
	bmcMu sync.Mutex
	bmcs  map[string]bmc.Controller
}

type recordedImages struct {
	Node    string            `json:"node"`
	Engines map[string]string `json:"engines"`
}

var _ local.Machines = (*machines)(nil)

func newMachines(dir string, log *slog.Logger, built *images.Built, power *bmc.Inventory) *machines {
	m := &machines{dir: dir, log: log, built: built, power: power}
	if built != nil {
		m.images = recordedImages{Node: built.Node, Engines: built.Engines}
	}
	return m
}

func (m *machines) Backend() string { return Name }

func (m *machines) options() kindlab.Options {
	return kindlab.Options{Image: m.images.Node, StateDir: m.dir, Log: m.log, Wait: UpWait}
}

// Up creates the cluster on the lab network, or repairs the one up (a
// node container that is not powered off by a fault and does not run is
// started again), and puts each engine's image into the nodes of its
// members.
func (m *machines) Up(ctx context.Context, sc *scenarios.Scenario) (*netlab.Lab, error) {
	if m.built == nil {
		return nil, errors.New("kind: no images to stand the lab up from")
	}
	if err := m.writeImages(); err != nil {
		return nil, err
	}
	exists, err := clusterExists(ctx, kindlab.ClusterPrefix+sc.Name)
	if err != nil {
		return nil, err
	}
	var c *kindlab.Cluster
	if exists {
		if c, err = kindlab.Open(ctx, sc, m.options()); err == nil {
			_, off, _ := c.Net.Faults()
			offSet := map[string]bool{}
			for _, n := range off {
				offSet[n] = true
			}
			err = c.Repair(ctx, offSet, UpWait)
		}
	} else {
		c, err = kindlab.Up(ctx, sc, m.options())
	}
	if c == nil {
		return nil, err
	}
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	if err != nil {
		return c.Net, err
	}
	return c.Net, m.prepare(ctx, sc)
}

// prepare creates the members' namespace and a headless Service per
// service, and loads each engine's image into the nodes its members run
// on.
func (m *machines) prepare(ctx context.Context, sc *scenarios.Scenario) error {
	topo, err := topology.Build(sc)
	if err != nil {
		return err
	}
	api := kindlab.APIService(topo)
	var services []string
	for _, sv := range topo.Services {
		if sv.Name != api {
			services = append(services, sv.Name)
		}
	}
	if out, err := m.c.Kubectl(ctx, kindlab.ServiceObjects(services), "apply", "--filename", "-"); err != nil {
		return fmt.Errorf("kind: namespace %s and its services: %w: %s", kindlab.Namespace, err, out)
	}
	nodes := map[string][]kindlab.NodePlan{} // image → nodes
	seen := map[string]bool{}
	for _, sv := range topo.Services {
		img := engineImages[local.EngineOf(sv.Spec)]
		if sv.Name == api || img == "" {
			continue
		}
		tag := m.images.Engines[img]
		for _, n := range sv.Members {
			if np, ok := m.c.Plan.Node(n.Name); ok && !seen[tag+" "+n.Name] {
				seen[tag+" "+n.Name] = true
				nodes[tag] = append(nodes[tag], np)
			}
		}
	}
	for tag, ns := range nodes {
		if err := m.c.LoadImageInto(ctx, tag, ns); err != nil {
			return err
		}
	}
	return nil
}

func (m *machines) writeImages() error {
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m.images, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(m.dir, imagesFile), b, 0o644)
}

// clusterExists says whether kind has containers of the named cluster.
func clusterExists(ctx context.Context, name string) (bool, error) {
	out, err := docker.Run(ctx, "ps", "--all", "--quiet", "--filter", "label="+cluster.ClusterLabel+"="+name)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(out)) != "", nil
}

// Open attaches to the cluster of a lab that is up.
func (m *machines) Open(ctx context.Context, sc *scenarios.Scenario) (*netlab.Lab, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, imagesFile))
	if err != nil {
		return nil, fmt.Errorf("kind: %w", err)
	}
	if err := json.Unmarshal(b, &m.images); err != nil {
		return nil, fmt.Errorf("kind: %s: %w", imagesFile, err)
	}
	c, err := kindlab.Open(ctx, sc, m.options())
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	return c.Net, nil
}

// EngineFor: the etcd service on every control-plane node is the
// cluster's own etcd and API servers.
func (m *machines) EngineFor(topo *topology.Topology, sv *topology.Service) string {
	if sv.Name == kindlab.APIService(topo) {
		return EngineAPI
	}
	return ""
}

func (m *machines) Engine(name string) (local.Engine, error) {
	if name == EngineAPI {
		return &apiEngine{}, nil
	}
	return nil, fmt.Errorf("kind: no engine %s", name)
}

func (m *machines) cluster() (*kindlab.Cluster, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		return nil, errors.New("kind: the cluster is not open")
	}
	return m.c, nil
}

// Launcher: a service's members as pods from its engine's image (a
// stateless service's workers from the worker image); the API service's
// are the control-plane nodes' static pods.
func (m *machines) Launcher(ctx context.Context, service, engine string) (engines.Launcher, error) {
	c, err := m.cluster()
	if err != nil {
		return nil, err
	}
	if engine == EngineAPI {
		return &staticPods{c: c}, nil
	}
	tag := m.images.Engines[engineImages[engine]]
	if tag == "" {
		return nil, fmt.Errorf("kind: no image of engine %s", engine)
	}
	return &kindlab.Pods{Cluster: c, Image: tag, Service: service, StateDir: m.dir}, nil
}

func (m *machines) PowerOff(ctx context.Context, node string) error {
	c, err := m.cluster()
	if err != nil {
		return err
	}
	ctl, err := m.bmcOf(ctx, node)
	switch {
	case err != nil:
		return err
	case ctl == nil:
		return c.PowerOff(ctx, node)
	}
	return m.powerBy(ctx, node, ctl, bmc.Off)
}

func (m *machines) PowerOn(ctx context.Context, node string) error {
	c, err := m.cluster()
	if err != nil {
		return err
	}
	ctl, err := m.bmcOf(ctx, node)
	switch {
	case err != nil:
		return err
	case ctl == nil:
		return c.PowerOn(ctx, node)
	}
	return c.PowerOnBy(ctx, node, func(ctx context.Context) error { return m.powerBy(ctx, node, ctl, bmc.On) })
}

// bmcWait bounds a BMC's power transition, from the request to the BMC
// reporting the new state (a real server's BMC: seconds).
const bmcWait = time.Minute

// bmcOf is the controller of node's BMC, nil when Options.Power does not
// list the node (its container is then killed and started by docker).
func (m *machines) bmcOf(ctx context.Context, node string) (bmc.Controller, error) {
	if m.power == nil {
		return nil, nil
	}
	b, ok := m.power.Lookup(node)
	if !ok {
		return nil, nil
	}
	m.bmcMu.Lock()
	defer m.bmcMu.Unlock()
	if ctl, ok := m.bmcs[node]; ok {
		return ctl, nil
	}
	ctl, err := bmc.New(ctx, m.log, b)
	if err != nil {
		return nil, fmt.Errorf("kind: the BMC of %s: %w", node, err)
	}
	if m.bmcs == nil {
		m.bmcs = map[string]bmc.Controller{}
	}
	m.bmcs[node] = ctl
	return ctl, nil
}

// powerBy asks node's BMC for a power state (ForceOff: every process
// killed at once, as docker kill; On) and waits until it reports it.
func (m *machines) powerBy(ctx context.Context, node string, ctl bmc.Controller, to bmc.State) error {
	ask := ctl.PowerOn
	if to == bmc.Off {
		ask = ctl.PowerOff
	}
	if err := ask(ctx); err != nil {
		return fmt.Errorf("kind: power %s %s through its BMC: %w", to, node, err)
	}
	wctx, cancel := context.WithTimeout(ctx, bmcWait)
	defer cancel()
	took, err := bmc.WaitFor(wctx, m.log, ctl, to)
	if err != nil {
		return fmt.Errorf("kind: power %s %s through its BMC: %w", to, node, err)
	}
	m.log.Info("node powered through its BMC", "node", node, "state", to, "took", took.Round(time.Millisecond))
	return nil
}

// Wipe loses a node's own data with its disk: a control-plane node's
// etcd (its member is replaced when the node is back, see kindlab).
func (m *machines) Wipe(_ context.Context, node string) error {
	c, err := m.cluster()
	if err != nil {
		return err
	}
	return c.Wipe(node)
}

var _ local.Wiper = (*machines)(nil)

// Down removes the cluster and the lab network; with no network state
// left (chaosloop was killed before it was written), the cluster's
// containers by name.
func (m *machines) Down(ctx context.Context) error {
	err := kindlab.Down(ctx, m.log, m.dir)
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(filepath.Join(m.dir, "netlab")); errors.Is(serr, os.ErrNotExist) {
		return cluster.Delete(m.log, kindlab.ClusterPrefix+filepath.Base(m.dir), filepath.Join(m.dir, "kind"))
	}
	return err
}
