// Package local is the local lab provider: every node of a scenario becomes
// a host (a network namespace, see netlab) on this machine, running the real
// replicated engines of the services placed on it. State lives on disk under
// Options.Root/<lab>, so that a later chaosloop — after a crash — can show
// the lab's status, recover its faults and bring it down.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Default locations.
const (
	DefaultRoot  = "/var/lib/chaosloop/labs"
	DefaultCache = "/var/cache/chaosloop"
)

// Options configure the provider.
type Options struct {
	// Root holds one state directory per lab.
	Root string
	// Cache holds downloaded and built engines (Kafka jars, FerretDB).
	Cache string
	Log   *slog.Logger
	// Progress, when set, is told what Up is doing.
	Progress func(lab.Progress)
	// Seed drives the random choices of faults (delay jitter, loss).
	Seed uint64
	// Machines, when set, makes another backend's machines the lab's
	// nodes (see Machines), given the lab's state directory.
	Machines func(stateDir string) Machines
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.Cache == "" {
		o.Cache = DefaultCache
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) progress(p lab.Progress) {
	if o.Progress != nil {
		o.Progress(p)
	}
}

// installing returns ctx with the steps of an install (apt-get, Maven, a
// build) reported as service's "installing" progress: a first install
// takes minutes, and a CI log must show what it is doing.
func (o Options) installing(ctx context.Context, service string) context.Context {
	if o.Progress == nil {
		return ctx
	}
	return install.WithSteps(ctx, func(detail string) {
		o.progress(lab.Progress{Service: service, Stage: "installing", Detail: detail})
	})
}

// serviceState is a service as the lab runs it.
type serviceState struct {
	Name    string          `json:"name"`
	Kind    string          `json:"kind"`
	Engine  string          `json:"engine"`
	Cluster engines.Cluster `json:"cluster"`
	// Controller is the zookeeper service a kafka service uses ("" = KRaft).
	Controller string `json:"controller,omitempty"`
	// Worker runs on each member of a stateless service (see StartWorkers).
	Worker *lab.Worker `json:"worker,omitempty"`
}

// labState is lab.json.
type labState struct {
	Version  int             `json:"version"`
	Name     string          `json:"name"`
	Created  time.Time       `json:"created"`
	Scenario json.RawMessage `json:"scenario"`
	Services []*serviceState `json:"services"`
	// Faults are the faults injected and not yet recovered.
	Faults []lab.Injected `json:"faults"`
}

// Lab is a running local lab.
type Lab struct {
	opts Options
	dir  string
	topo *topology.Topology
	net  *netlab.Lab
	eng  *engineSet
	// mach are the nodes' machines when another backend runs them.
	mach Machines

	mu       sync.Mutex // guards st and its file, and delayers
	st       *labState
	delayers map[string][]*runningDelayer
}

// ErrNotRoot is returned where the lab needs root.
var ErrNotRoot = errors.New("the local lab needs root (network namespaces, cgroups, engines run as their users): run chaosloop as root")

// Supported reports why the local lab cannot run here, or nil.
func Supported() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("the local lab needs Linux (network namespaces); this is %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// StateDir is the directory of a lab's state.
func (o Options) StateDir(name string) string { return filepath.Join(o.withDefaults().Root, name) }

// Up brings a scenario's lab up, or reuses and repairs the one already
// running, and returns once every service is healthy. It is idempotent.
func Up(ctx context.Context, opts Options, sc *scenarios.Scenario) (*Lab, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	dir := opts.StateDir(sc.Name)
	raw, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	shape, err := labShape(sc)
	if err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, dir: dir, topo: topo, mach: opts.machines(dir)}
	l.eng = l.newEngines()
	if prev, err := readState(dir); err == nil {
		var stored scenarios.Scenario
		prevShape := ""
		if err := json.Unmarshal(prev.Scenario, &stored); err == nil {
			prevShape, _ = labShape(&stored)
		}
		if prevShape != shape {
			return nil, fmt.Errorf("a lab named %q with other sites or services is already up (state in %s): run 'chaosloop down %s' first", sc.Name, dir, sc.Name)
		}
		prev.Scenario = raw
		l.st = prev
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else {
		l.st = &labState{Version: 1, Name: sc.Name, Created: time.Now().UTC(), Scenario: raw}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	opts.progress(lab.Progress{Stage: "installing", Detail: "network tools"})
	if err := netlab.Install(opts.installing(ctx, ""), opts.Log); err != nil {
		return nil, err
	}
	if err := l.planServices(); err != nil {
		return nil, err
	}
	if err := l.install(ctx); err != nil {
		return nil, err
	}
	opts.progress(lab.Progress{Stage: "network", Detail: fmt.Sprintf("%d hosts", len(topo.Nodes))})
	nl, err := l.upNetwork(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("lab network: %w (run 'chaosloop down %s' to clean up)", err, sc.Name)
	}
	l.net = nl
	if err := l.assignHosts(ctx); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	// The lab's own steps end here; the services' follow.
	opts.progress(lab.Progress{Stage: "done", Detail: fmt.Sprintf("network of %d hosts up", len(topo.Nodes))})
	if err := l.startAll(ctx); err != nil {
		return l, fmt.Errorf("%w (the lab is left as it is for inspection: 'chaosloop status %s', 'chaosloop down %s')", err, sc.Name, sc.Name)
	}
	return l, nil
}

// labShape is what a lab is made of: the topology and the services. Runs
// that differ only in load, faults or expectations reuse the same lab.
func labShape(sc *scenarios.Scenario) (string, error) {
	b, err := json.Marshal(struct {
		Sites    []scenarios.Site
		Links    []scenarios.Link
		Services []scenarios.Service
	}{sc.Sites, sc.Links, sc.Services})
	return string(b), err
}

// Open loads a running lab from its state directory.
func Open(ctx context.Context, opts Options, name string) (*Lab, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	dir := opts.StateDir(name)
	st, err := readState(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no lab named %q is up (no state in %s)", name, dir)
		}
		return nil, err
	}
	sc := &scenarios.Scenario{}
	if err := json.Unmarshal(st.Scenario, sc); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, dir: dir, topo: topo, st: st, mach: opts.machines(dir)}
	if l.mach != nil {
		l.net, err = l.mach.Open(ctx, sc)
	} else {
		l.net, err = netlab.Load(opts.Log, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	l.eng = l.newEngines()
	if err := l.attachLaunchers(ctx); err != nil {
		return nil, err
	}
	l.attachDialers()
	return l, nil
}

// List returns the names of the labs with state under opts.Root.
func List(opts Options) ([]string, error) {
	opts = opts.withDefaults()
	ents, err := os.ReadDir(opts.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Name returns the lab's (scenario's) name.
func (l *Lab) Name() string { return l.st.Name }

// Topology returns the lab's placed model.
func (l *Lab) Topology() *topology.Topology { return l.topo }

// Net returns the lab's network.
func (l *Lab) Net() *netlab.Lab { return l.net }

// Dir returns the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

func readState(dir string) (*labState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, err
	}
	st := &labState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "lab.json"), err)
	}
	return st, nil
}

// save writes lab.json atomically; callers hold no lock or l.mu.
func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.st, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(l.dir, "lab.json")
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// service returns a service's state by name.
func (l *Lab) service(name string) (*serviceState, error) {
	for _, ss := range l.st.Services {
		if ss.Name == name {
			return ss, nil
		}
	}
	return nil, fmt.Errorf("lab %s has no service %q", l.st.Name, name)
}

// KafkaPartitions returns the partitions of a kafka service's topics:
// leader, replicas and in-sync replicas as broker (member) indexes.
func (l *Lab) KafkaPartitions(ctx context.Context, service string) ([]kafka.Partition, error) {
	ss, k, err := serviceEngine[*kafkaEngine](l, service, "kafka")
	if err != nil {
		return nil, err
	}
	return k.e.Partitions(ctx, &ss.Cluster, k.o)
}

// Endpoints returns a service's client endpoints (addr:port), or nil for a
// stateless service.
func (l *Lab) Endpoints(service string) ([]string, error) {
	ss, err := l.service(service)
	if err != nil {
		return nil, err
	}
	if ss.Engine == EngineNone {
		return nil, nil
	}
	e, err := l.eng.get(ss.Engine, ss)
	if err != nil {
		return nil, err
	}
	return e.Endpoints(&ss.Cluster), nil
}

// Cluster returns the members of a service as the engines see them.
func (l *Lab) Cluster(service string) (*engines.Cluster, error) {
	ss, err := l.service(service)
	if err != nil {
		return nil, err
	}
	return &ss.Cluster, nil
}
