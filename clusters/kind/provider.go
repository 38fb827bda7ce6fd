// Package kind is the kind backend behind the lab seam: a scenario stood
// up as a kind cluster whose node containers are the lab network's hosts
// (package kindlab), the services' members as pods pinned to their nodes
// from images built here (package images), and the scenario's etcd
// service on the control-plane nodes being the cluster's own datastore.
// Everything else — the network and its faults, the engines' code and
// probes, state, status, workers — is the local lab's (package local),
// which runs on kind's machines through local.Machines.
package kind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Name is the kind backend's name, what --on selects.
const Name = "kind"

// DefaultRoot holds one state directory per kind lab, apart from the
// local labs' so that each backend lists and removes only its own.
const DefaultRoot = "/var/lib/chaosloop/kind-labs"

// Options configure the kind backend.
type Options struct {
	// Root holds one state directory per lab.
	Root string
	// Cache is the engine cache (Kafka jars, FerretDB), as the local lab's;
	// the images' cache is its kind/ directory.
	Cache string
	Log   *slog.Logger
	// Progress, when set, is told what Up does.
	Progress func(lab.Progress)
	// Seed drives the random choices of faults.
	Seed uint64
	// Runtime is the OCI runtime wrapper a dockerd chaosloop starts uses:
	// the chaosloop binary (or a test binary) and the argument that makes
	// it the wrapper.
	Runtime []string
	// DockerStateDir is the state of a dockerd chaosloop starts.
	DockerStateDir string
	// Power, when set, powers the nodes it lists through their BMCs
	// (Redfish or IPMI) instead of killing and starting their containers
	// with docker: BMCs that power kind's node containers (emulators, see
	// package bmctest) try a real cluster's power path on this machine.
	Power *bmc.Inventory
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.Cache == "" {
		o.Cache = local.DefaultCache
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DockerStateDir == "" {
		o.DockerStateDir = docker.DefaultStateDir
	}
	return o
}

// Provider is the kind backend.
type Provider struct {
	opts Options
}

var _ lab.Provider = (*Provider)(nil)

// NewProvider returns the kind backend with opts.
func NewProvider(opts Options) *Provider { return &Provider{opts: opts.withDefaults()} }

// Name is "kind".
func (p *Provider) Name() string { return Name }

// Capabilities: the local lab's, which runs on kind's machines: the
// network's faults on the node containers' adopted namespaces, power as
// the containers killed and started, kill and pause as signals to the
// members' processes in their nodes.
func (p *Provider) Capabilities() lab.Capabilities {
	return local.NewProvider(local.Options{}).Capabilities()
}

// Daemon is the Docker daemon the backend uses.
func (p *Provider) Daemon() *docker.Daemon {
	return &docker.Daemon{StateDir: p.opts.DockerStateDir, Runtime: p.opts.Runtime, Log: p.opts.Log}
}

// Up checks that the scenario fits kind, makes sure a Docker daemon
// answers (starting one; it outlives this chaosloop and `down --all`
// stops it) and that the images are built, then stands the lab up.
func (p *Provider) Up(ctx context.Context, sc *scenarios.Scenario) (lab.Lab, error) {
	if err := local.Supported(); err != nil {
		return nil, err
	}
	if err := Fits(sc); err != nil {
		return nil, err
	}
	built, err := p.ensureImages(ctx)
	if err != nil {
		return nil, err
	}
	lp := p.local(built)
	return lp.Up(ctx, sc)
}

// ensureImages starts or finds the daemon and builds the missing images.
func (p *Provider) ensureImages(ctx context.Context) (*images.Built, error) {
	progress := func(stage, detail string) {
		if p.opts.Progress != nil {
			p.opts.Progress(lab.Progress{Stage: stage, Detail: detail})
		}
	}
	progress("installing", "docker.io")
	if err := docker.EnsureInstalled(ctx, p.opts.Log); err != nil {
		return nil, err
	}
	progress("installing", "dockerd")
	if _, err := p.Daemon().Ensure(ctx); err != nil {
		return nil, err
	}
	b := &images.Builder{Cache: filepath.Join(p.opts.Cache, "kind"), EngineCache: p.opts.Cache, Log: p.opts.Log,
		Progress: func(step, stage, detail string) { progress("installing", "image "+step+": "+stage+" "+detail) }}
	return b.Build(ctx)
}

// local is the local lab's provider on kind's machines. built is nil for
// a lab that is only opened or removed (the images it runs are in its
// state).
func (p *Provider) local(built *images.Built) *local.Provider {
	o := local.Options{Root: p.opts.Root, Cache: p.opts.Cache, Log: p.opts.Log, Progress: p.opts.Progress, Seed: p.opts.Seed}
	o.Machines = func(dir string) local.Machines { return newMachines(dir, p.opts.Log, built, p.opts.Power) }
	return local.NewProvider(o)
}

// Open attaches to a kind lab that is up.
func (p *Provider) Open(ctx context.Context, name string) (lab.Lab, error) {
	if err := local.Supported(); err != nil {
		return nil, err
	}
	return p.local(nil).Open(ctx, name)
}

// List names the kind labs with state.
func (p *Provider) List(ctx context.Context) ([]string, error) { return p.local(nil).List(ctx) }

// Down removes a kind lab by name: its node containers, network and
// state; the image cache and the daemon stay (DownAll stops a daemon
// chaosloop started).
func (p *Provider) Down(ctx context.Context, name string) error {
	if err := local.Supported(); err != nil {
		return err
	}
	if docker.Ping(ctx) != nil {
		// the containers went with their daemon; the network is ours
		if _, err := os.Stat(filepath.Join(p.opts.Root, name)); err == nil {
			if _, err := p.Daemon().Ensure(ctx); err != nil {
				return err
			}
		}
	}
	return p.local(nil).Down(ctx, name)
}

// DownAll removes every kind lab, every namespace a kind lab's network
// left behind, and stops the dockerd chaosloop started.
func (p *Provider) DownAll(ctx context.Context) error {
	names, err := p.List(ctx)
	var errs []error
	errs = append(errs, err)
	for _, n := range names {
		if err := p.Down(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	errs = append(errs, netlab.DownAllPrefix(ctx, p.opts.Log, kindlab.NSPrefix))
	errs = append(errs, p.Daemon().Stop(ctx))
	return errors.Join(errs...)
}

// Fits says why a scenario cannot stand up on kind, or nil: the cluster
// plan's limits, and no etcd-port user (etcd, Patroni's store) beside the
// cluster's own etcd on a control-plane node other than the datastore.
func Fits(sc *scenarios.Scenario) error {
	if _, err := kindlab.NewPlan(sc); err != nil {
		return err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return err
	}
	api := kindlab.APIService(topo)
	cp := map[string]bool{}
	for _, n := range kindlab.ControlPlaneNodes(topo) {
		cp[n.Name] = true
	}
	var errs []error
	for _, sv := range topo.Services {
		if sv.Name == api || (sv.Kind != scenarios.KindEtcd && sv.Kind != scenarios.KindRaft && sv.Kind != scenarios.KindMongoDB) {
			continue
		}
		for _, n := range sv.Members {
			if cp[n.Name] {
				errs = append(errs, fmt.Errorf("kind: service %s has a member on control-plane node %s, where the cluster's own etcd holds the etcd ports; place it on other nodes, or make it the etcd service of every control-plane node", sv.Name, n.Name))
				break
			}
		}
	}
	return errors.Join(errs...)
}
