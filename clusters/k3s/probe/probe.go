// Package probe observes the adopter's own services (attach mode) with
// the local lab's engine probes: the same code that tells a lab's leader,
// quorum and writability, reaching each member's pod through the API
// server as `kubectl port-forward` does, since pod addresses are not
// routed from chaosloop's machine. It only reads: it starts, stops and
// signals nothing.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// ErrNoProbe is wrapped when chaosloop has no probe of an attached
// service's engine: one whose probe would need the adopter's credentials
// or names (MySQL users, Sentinel's master name, Kafka's listeners).
var ErrNoProbe = errors.New("no probe of attached members")

// engine is what a probe needs of an engine.
type engine interface {
	Status(ctx context.Context, c *engines.Cluster) (engines.Status, error)
}

// Prober probes attached services. It caches each engine's clients, so
// one Prober serves a run's repeated observations; Close ends them.
type Prober struct {
	cluster *k3s.Cluster
	log     *slog.Logger

	mu         sync.Mutex
	engines    map[string]engine // by service
	forwarders map[string]*Forwarder
}

// New returns a Prober of the services attached on c.
func New(c *k3s.Cluster, log *slog.Logger) *Prober {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Prober{cluster: c, log: log, engines: map[string]engine{}, forwarders: map[string]*Forwarder{}}
}

// Close ends the engines' client connections (their port-forwards with
// them); the Prober may be used again after.
func (p *Prober) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for name, e := range p.engines {
		if c, ok := e.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
		delete(p.engines, name)
		delete(p.forwarders, name)
	}
	return errors.Join(errs...)
}

// Supported says whether sv's engine has a probe of attached members: an
// etcd (or another Raft service, as the lab stands etcd in for it),
// reached at etcd's client port without TLS.
func Supported(sv *topology.Service) error {
	if name := local.EngineOf(sv.Spec); name != local.EngineEtcd {
		return fmt.Errorf("service %s (%s): %w yet", sv.Name, sv.Kind, ErrNoProbe)
	}
	return nil
}

// Probe observes as, the attached service sv as the cluster runs it (see
// k3s.Attached): every member pod in member order. A member whose pod is
// not running is "not running"; one whose probe ran out of time is
// TimedOut (no evidence of its state), as in the lab.
func (p *Prober) Probe(ctx context.Context, sv *topology.Service, as k3s.AttachedService) (engines.Status, error) {
	if err := Supported(sv); err != nil {
		return engines.Status{}, err
	}
	e, d := p.engine(sv.Name, as.Namespace)
	c := &engines.Cluster{Service: sv.Name}
	l := podsLauncher{}
	pods := map[netip.Addr]string{}
	for _, m := range as.Members {
		mem := engines.Member{Index: m.Index, Name: m.Pod, Node: m.Node}
		if addr, err := netip.ParseAddr(m.IP); err == nil {
			mem.Addr = addr
			pods[addr] = m.Pod
		}
		l[m.Pod] = m.Running && mem.Addr.IsValid()
		c.Members = append(c.Members, mem)
	}
	d.SetPods(pods)
	c.Launcher, c.Dial = l, d.Dial
	st, err := e.Status(ctx, c)
	if err == nil && timedOut(st) {
		// A first probe also opens each member's connection through the
		// API server and the member's kubelet, which may take longer than
		// the engine's probe allows; the connections opened stay for the
		// second.
		st, err = e.Status(ctx, c)
	}
	if err != nil {
		return st, fmt.Errorf("service %s: %w", sv.Name, err)
	}
	return st, nil
}

func timedOut(st engines.Status) bool {
	for _, m := range st.Members {
		if m.TimedOut {
			return true
		}
	}
	return false
}

// engine returns the service's engine and the forwarder its cached
// clients dial through, made on first use.
func (p *Prober) engine(service, namespace string) (engine, *Forwarder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.engines[service]
	if !ok {
		e = etcd.New(p.log)
		p.engines[service] = e
		p.forwarders[service] = &Forwarder{Cluster: p.cluster, Namespace: namespace, Log: p.log}
	}
	return e, p.forwarders[service]
}

// podsLauncher answers the engines' "does the process run" from the pods'
// states: a member's processes are named MEMBER.WHAT (etcd's
// "etcd-0.etcd"), and run while its pod and every container of it run.
// It never starts, signals or stops one: the pods are the adopter's.
type podsLauncher map[string]bool

var errAttached = errors.New("an attached member's processes are the adopter's: chaosloop does not start, signal or stop them")

func (l podsLauncher) Start(context.Context, engines.Member, proc.Spec) (string, error) {
	return "", errAttached
}

func (l podsLauncher) Alive(_ context.Context, name string) bool {
	best := ""
	for pod := range l {
		if strings.HasPrefix(name, pod+".") && len(pod) > len(best) {
			best = pod
		}
	}
	return best != "" && l[best]
}

func (l podsLauncher) Signal(context.Context, string, syscall.Signal) error { return errAttached }

func (l podsLauncher) Stop(context.Context, string, time.Duration) error { return errAttached }

// ProbeAll probes every service of services that has a probe, in
// parallel, setting its Engine, or NotProbed to why not.
func (p *Prober) ProbeAll(ctx context.Context, topo *topology.Topology, services []k3s.AttachedService) {
	var wg sync.WaitGroup
	for i := range services {
		as := &services[i]
		sv := topo.Service(as.Service)
		if sv == nil {
			as.NotProbed = "not a service of the scenario"
			continue
		}
		if sv.Kind == scenarios.KindStateless {
			continue // nothing to probe but the pods
		}
		if err := Supported(sv); err != nil {
			as.NotProbed = err.Error()
			continue
		}
		wg.Go(func() {
			st, err := p.Probe(ctx, sv, *as)
			if err != nil {
				as.NotProbed = err.Error()
				return
			}
			as.Engine = &st
		})
	}
	wg.Wait()
}
