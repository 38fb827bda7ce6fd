// Package k3slab is the k3s backend behind the lab seam. A scenario's
// services are either the adopter's own on a real cluster
// (services[].attach, attach mode), which chaosloop observes with its
// engine probes (package probe), or chaosloop's own engines, which it
// deploys there from the user's registry (package deploy: etcd,
// ZooKeeper, Kafka, Redis, Galera and the document store so far).
// Faults go through the node agents and the BMCs (package nemesis). When
// chaosloop deployed every service (Drives), a run drives the transfer
// load as on the labs: the handlers are worker pods, the client enters
// through the client nodes' agents; otherwise it drives none
// (lab.Capabilities.Observing): a run samples the services through the
// scenario's faults and judges their quorum against analyze.
package k3slab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/guard"
	"github.com/chaosloop/chaosloop/clusters/k3s/nemesis"
	"github.com/chaosloop/chaosloop/clusters/k3s/probe"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Name is the backend's name, what --on selects.
const Name = "k3s"

// Observing is why a run on the backend drives no load.
const Observing = "on a cluster chaosloop observes the adopter's services and drives no load through them"

// Options configure the backend.
type Options struct {
	// Cluster is the cluster the command named (k3s.Connect).
	Cluster *k3s.Cluster
	// NodeMap maps scenario nodes to cluster nodes (nil: same names).
	NodeMap k3s.NodeMap
	// BMC is the nodes' BMC inventory; nil refuses power faults.
	BMC *bmc.Inventory
	Log *slog.Logger
	// Ready bounds Up's wait for every service to be healthy (default 2m).
	Ready time.Duration
	// APIBudget is how long the API server may be silent before that
	// stops the run (guard.DefaultAPIBudget when 0); Interval, how often
	// the guard looks (guard.DefaultInterval when 0).
	APIBudget, Interval time.Duration
	// Progress, when set, is told what Up does.
	Progress func(lab.Progress)
	// Image names an engine's image in the user's registry (--registry);
	// nil: deploy mode is not available, every service must be attached.
	Image func(engine string) (string, error)
	// PortOffset is added to the deployed engines' ports (the CLI's
	// default is deploy.DefaultPortOffset).
	PortOffset int
	// Load: a run drives the transfer load (the scenario's services all
	// deployed, Drives); else it only observes.
	Load bool
}

// Provider is the k3s backend.
type Provider struct {
	o Options
}

var _ lab.Provider = (*Provider)(nil)

// NewProvider returns the backend on o.Cluster.
func NewProvider(o Options) *Provider {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Ready == 0 {
		o.Ready = 2 * time.Minute
	}
	return &Provider{o: o}
}

// Name is "k3s".
func (p *Provider) Name() string { return Name }

// Capabilities: the network faults through the node agents, kill of an
// attached member (its pod deleted) and pause (its pod frozen by its
// node's agent), power through the BMCs when an inventory is given.
func (p *Provider) Capabilities() lab.Capabilities {
	c := lab.Capabilities{Actions: map[string][]string{}}
	if !p.o.Load {
		c.Observing = Observing
	}
	for _, a := range scenarios.Actions {
		if (a == scenarios.ActionPowerOff || a == scenarios.ActionDestroy) && p.o.BMC == nil {
			continue
		}
		c.Actions[a] = scenarios.ActionTargets(a)
	}
	return c
}

// Up checks that every service of sc is attached and observable, then
// returns once each one is healthy (within Options.Ready). A cluster that
// differs from the scenario (a member on another node) is logged: the run
// judges the cluster against the scenario, and the difference may be why
// it fails.
func (p *Provider) Up(ctx context.Context, sc *scenarios.Scenario) (lab.Lab, error) {
	if p.o.Cluster == nil {
		return nil, errors.New("k3s: no cluster")
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	if err := Observable(topo, p.o.Image != nil, p.o.Load); err != nil {
		return nil, err
	}
	if p.o.Load {
		if why := Drives(topo, p.o.Image != nil); why != "" {
			return nil, errors.New("k3s: " + why)
		}
	}
	l := &Lab{topo: topo, cluster: p.o.Cluster, nm: p.o.NodeMap, log: p.o.Log, prober: probe.New(p.o.Cluster, p.o.Log),
		deployed: map[string]*deploy.Service{}, portOffset: p.o.PortOffset,
		agents:  &agent.Client{Kube: p.o.Cluster.Client, Log: p.o.Log, Scenario: topo.Name},
		workers: map[string]*deploy.Workers{}, work: map[string]lab.Worker{}}
	if p.o.Cluster.Config != nil {
		l.relays = l.agents.NewRelays(p.o.Cluster.Config)
	}
	l.nemesis = &nemesis.Nemesis{Cluster: p.o.Cluster, Topology: topo, NodeMap: p.o.NodeMap, BMC: p.o.BMC, Log: p.o.Log,
		Lifetime: lifetime(sc)}
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	if err := p.deploy(ctx, l); err != nil {
		l.Close()
		return l, err
	}
	for _, sv := range topo.Services {
		p.progress(sv.Name, "waiting", "until its members are healthy")
		if err := l.awaitHealthy(ctx, sv, p.o.Ready); err != nil {
			p.progress(sv.Name, "failed", err.Error())
			l.Close() // the lab is returned for inspection, not used
			return l, err
		}
		p.progress(sv.Name, "healthy", "")
	}
	l.watch(p.o.APIBudget, p.o.Interval)
	return l, nil
}

func (p *Provider) progress(service, stage, detail string) {
	if p.o.Progress != nil {
		p.o.Progress(lab.Progress{Service: service, Stage: stage, Detail: detail})
	}
}

// deploy starts the members of the services chaosloop deploys (those not
// attached), on their nodes, and returns once each is healthy. Members
// that run already (a lab left up) are kept.
func (p *Provider) deploy(ctx context.Context, l *Lab) error {
	for _, sv := range deployOrder(l.topo.Services) {
		if sv.Spec.Attach != nil || sv.Kind == scenarios.KindStateless {
			continue // a stateless one's workers are the run's (StartWorkers)
		}
		p.progress(sv.Name, "deploying", "its members' pods on their nodes")
		d, err := deploy.New(ctx, deploy.Options{Cluster: p.o.Cluster, Scenario: l.topo.Name, NodeMap: p.o.NodeMap,
			Image: p.o.Image, PortOffset: p.o.PortOffset, Log: p.o.Log, Relays: l.relays}, sv)
		if err != nil {
			p.progress(sv.Name, "failed", err.Error())
			return err
		}
		l.deployed[sv.Name] = d
		sctx, cancel := context.WithTimeout(ctx, p.o.Ready)
		err = d.Start(sctx)
		cancel()
		if err != nil {
			p.progress(sv.Name, "failed", err.Error())
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
	}
	return nil
}

// deployOrder is the order services are deployed in: a Kafka in
// ZooKeeper mode after the others, as its brokers need their ensemble.
func deployOrder(svs []*topology.Service) []*topology.Service {
	stages := deployStages(svs)
	return append(stages[0], stages[1]...)
}

// deployStages are the services in two stages, the order their members
// start again in after faults: every one but a Kafka on a ZooKeeper, side
// by side, then those Kafkas.
func deployStages(svs []*topology.Service) [2][]*topology.Service {
	var first, then []*topology.Service
	for _, sv := range svs {
		if sv.Kind == scenarios.KindKafka && sv.ControllerService != nil {
			then = append(then, sv)
		} else {
			first = append(first, sv)
		}
	}
	return [2][]*topology.Service{first, then}
}

// lifetime bounds the agents' rules of a run's faults: the run's length
// and a margin, so that rules chaosloop could not lift (it crashed, the
// API server went silent) go by themselves soon after the run.
func lifetime(sc *scenarios.Scenario) time.Duration {
	d := 10 * time.Minute
	if sc.Load != nil {
		d += sc.Load.Warmup.D() + sc.Load.Duration.D()
	}
	return d
}

// Observable says why a scenario's services cannot be observed on a
// cluster, or nil: each must be attached, or one chaosloop can deploy
// (canDeploy: --registry was given) — a stateless one only when the run
// drives the load (load: its members are the workers') —, and each
// attached stateful one must have a probe of attached members.
func Observable(topo *topology.Topology, canDeploy, load bool) error {
	var errs []error
	for _, sv := range topo.Services {
		switch {
		case sv.Spec.Attach == nil && sv.Kind == scenarios.KindStateless:
			if !load {
				errs = append(errs, fmt.Errorf("%s: service %s is not attached (services[].attach): chaosloop runs a stateless service's workers only when it drives the load, which it does when it deploys every service (--registry given, none attached)", sv.Src, sv.Name))
			}
		case sv.Spec.Attach == nil:
			if err := deploy.Deployable(sv); err != nil {
				errs = append(errs, fmt.Errorf("%s: service %s is not attached (services[].attach): %w", sv.Src, sv.Name, err))
			} else if !canDeploy {
				errs = append(errs, fmt.Errorf("%s: service %s is not attached (services[].attach): chaosloop deploys it from --registry, which was not given", sv.Src, sv.Name))
			}
		case sv.Kind == scenarios.KindStateless:
		default:
			if err := probe.Supported(sv); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w: its quorum could not be judged", sv.Src, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Open is not available: a run's lab is the cluster, stood up by Up.
func (p *Provider) Open(context.Context, string) (lab.Lab, error) {
	return nil, errors.New("k3s: the lab is the cluster: name the scenario FILE and the context")
}

// List: the k3s backend keeps no labs.
func (p *Provider) List(context.Context) ([]string, error) { return nil, nil }

// Down is `chaosloop down FILE --on k3s`'s, which deletes only the
// scenario's own objects: not the run's to do.
func (p *Provider) Down(context.Context, string) error {
	return errors.New("k3s: a run leaves what it deployed for the next run; chaosloop down FILE --on k3s --context C --yes removes the scenario's pods, their files and its agents")
}

// Lab is a scenario's attached services on a cluster.
type Lab struct {
	topo    *topology.Topology
	cluster *k3s.Cluster
	nm      k3s.NodeMap
	log     *slog.Logger
	prober  *probe.Prober
	nemesis *nemesis.Nemesis
	// deployed are the services chaosloop deployed, by name.
	deployed   map[string]*deploy.Service
	portOffset int
	agents     *agent.Client

	wmu sync.Mutex
	// workers of the stateless services chaosloop placed (not attached),
	// by name, and what each runs (to start again after a power-on)
	workers map[string]*deploy.Workers
	work    map[string]lab.Worker
	// relays reach the deployed members from their nodes and carry the
	// load client's connections from its nodes, through the agents
	relays *agent.Relays

	mu     sync.Mutex
	active []lab.Injected
	// recovering are faults recovered whose nodes may still be coming
	// back (NotReady for a while): the guard excuses them until a look
	// finds every node Ready at least RecoverySettle after their recovery.
	recovering []recovered
	// injecting are faults whose injection is under way: their nodes may
	// turn NotReady before every agent has confirmed the rules (on a busy
	// 12-node kind cluster an isolate of a site took over a minute, and
	// its nodes went NotReady meanwhile).
	injecting []lab.Injected
	// stop is the stop condition met, nil until then.
	stop *guard.Stop

	stopped    chan error
	endWatch   context.CancelFunc
	watchDone  chan struct{}
	closeWatch sync.Once
}

var (
	_ lab.Lab     = (*Lab)(nil)
	_ lab.Closer  = (*Lab)(nil)
	_ lab.Guarded = (*Lab)(nil)
)

// Name is the scenario's.
func (l *Lab) Name() string { return l.topo.Name }

// Topology is the scenario's placed model.
func (l *Lab) Topology() *topology.Topology { return l.topo }

// refresh reads the faults recorded in place.
func (l *Lab) refresh(ctx context.Context) error {
	active, err := l.nemesis.ActiveFaults(ctx)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.active = active
	l.mu.Unlock()
	return nil
}

func (l *Lab) awaitHealthy(ctx context.Context, sv *topology.Service, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		si, err := l.ServiceStatus(ctx, sv.Name)
		if err == nil && si.Healthy && si.Writable {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("service %s not healthy within %s: %w", sv.Name, bound, err)
			}
			return fmt.Errorf("service %s not healthy within %s: %s", sv.Name, bound, describe(si))
		case <-time.After(time.Second):
		}
	}
}

func describe(si lab.ServiceStatus) string {
	if si.Error != "" {
		return si.Error
	}
	var b []string
	for _, m := range si.Members {
		s := fmt.Sprintf("%s up=%v healthy=%v", m.Name, m.Up, m.Healthy)
		if m.Detail != "" {
			s += " (" + m.Detail + ")"
		}
		b = append(b, s)
	}
	return fmt.Sprintf("writable=%v: %s", si.Writable, strings.Join(b, "; "))
}

// probeTimeout bounds one service's observation: the pod list and the
// engine's probe (twice when its connections were new, see probe.Probe).
const probeTimeout = 10 * time.Second

// Status observes every service.
func (l *Lab) Status(ctx context.Context) (*lab.Status, error) {
	st := &lab.Status{Name: l.topo.Name, Dir: "context " + l.cluster.Context, Hosts: len(l.topo.Nodes), Faults: l.ActiveFaults()}
	out := make([]lab.ServiceStatus, len(l.topo.Services))
	var wg sync.WaitGroup
	for i, sv := range l.topo.Services {
		wg.Go(func() {
			si, err := l.ServiceStatus(ctx, sv.Name)
			if err != nil {
				si = lab.ServiceStatus{Name: sv.Name, Kind: sv.Kind, Error: err.Error()}
			}
			out[i] = si
		})
	}
	wg.Wait()
	st.Services = out
	return st, nil
}

// ServiceStatus observes one service: its members' pods and, for a
// stateful one, its engine's probe. A member whose pod is missing is down;
// a stateless member is up while its pod is Ready.
//
// The pods are listed anew on every sample rather than read from an
// informer's cache: a sample is evidence of now, and a cache cut off the
// API server keeps serving what it last saw, where a list fails and the
// sample is unknown, as it must be.
func (l *Lab) ServiceStatus(ctx context.Context, service string) (lab.ServiceStatus, error) {
	sv := l.topo.Service(service)
	if sv == nil {
		return lab.ServiceStatus{}, fmt.Errorf("unknown service %q", service)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if d, ok := l.deployed[service]; ok {
		return deployedStatus(ctx, sv, d), nil
	}
	if sv.Spec.Attach == nil && sv.Kind == scenarios.KindStateless {
		return l.workersStatus(ctx, sv), nil
	}
	si := lab.ServiceStatus{Name: sv.Name, Kind: sv.Kind, Engine: "pods"}
	as, err := k3s.AttachedOf(ctx, l.cluster, sv, l.nm)
	if err != nil {
		si.Error, si.TimedOut = err.Error(), lab.IsTimeout(err)
		return si, nil
	}
	byIndex := map[int]lab.Member{}
	for _, m := range as.Members {
		byIndex[m.Index] = lab.Member{Index: m.Index, Name: m.Pod, Node: m.Node, Addr: m.IP, Up: m.Ready, Healthy: m.Ready, Detail: m.NotReady}
	}
	if sv.Kind != scenarios.KindStateless {
		st, err := l.prober.Probe(ctx, sv, as)
		if err != nil {
			si.Error, si.TimedOut = err.Error(), lab.IsTimeout(err)
		}
		si.Engine, si.Version, si.Writable = st.Engine, st.Version, st.Writable
		for _, ms := range st.Members {
			m := byIndex[ms.Index]
			m.Role, m.Up, m.Healthy, m.Detail, m.TimedOut = ms.Role, ms.Up, ms.Healthy, ms.Detail, ms.TimedOut
			byIndex[ms.Index] = m
		}
	}
	si.Healthy = si.Error == ""
	for i, want := range sv.Members {
		m, ok := byIndex[i]
		if !ok {
			m = lab.Member{Index: i, Name: fmt.Sprintf("%s-%d", sv.Name, i), Detail: "no pod"}
		}
		m.Node = want.Name // the scenario's node: what analyze judges
		si.Members = append(si.Members, m)
		si.Healthy = si.Healthy && m.Healthy
		if sv.Kind == scenarios.KindStateless {
			si.Writable = si.Writable || m.Up
		}
	}
	return si, nil
}

// deployedStatus observes a service chaosloop deployed with its engine's
// probe, which reaches each member through a port-forward of its pod.
func deployedStatus(ctx context.Context, sv *topology.Service, d *deploy.Service) lab.ServiceStatus {
	st, err := d.Status(ctx)
	si := lab.ServiceStatus{Name: sv.Name, Kind: sv.Kind, Engine: st.Engine, Version: st.Version, Writable: st.Writable}
	if err != nil {
		si.Error, si.TimedOut = err.Error(), lab.IsTimeout(err)
	}
	si.Healthy = si.Error == ""
	for i, m := range d.Cluster.Members {
		lm := lab.Member{Index: i, Name: m.Name, Node: m.Node, Addr: m.Addr.String(), Detail: "not probed"}
		if k := slices.IndexFunc(st.Members, func(ms engines.MemberStatus) bool { return ms.Index == i }); k >= 0 {
			ms := st.Members[k]
			lm.Role, lm.Up, lm.Healthy, lm.Detail, lm.TimedOut = ms.Role, ms.Up, ms.Healthy, ms.Detail, ms.TimedOut
		}
		si.Members = append(si.Members, lm)
		si.Healthy = si.Healthy && lm.Healthy
	}
	return si
}

// FailoverBudgets: a deployed service's engine's, as chaosloop runs it;
// an attached one's etcd's defaults (the adopter's settings are not read;
// expect.failover overrides it); none for a stateless service.
func (l *Lab) FailoverBudgets() map[string]lab.Budget {
	out := map[string]lab.Budget{}
	for _, sv := range l.topo.Services {
		if sv.Kind == scenarios.KindStateless {
			out[sv.Name] = lab.Budget{Derivation: "no election: members are up with their pods"}
			continue
		}
		if _, ok := l.deployed[sv.Name]; ok {
			if b, ok := deploy.FailoverBudget(sv); ok {
				out[sv.Name] = b
				continue
			}
		}
		b := etcd.FailoverBudget()
		b.Derivation += " (etcd's defaults as chaosloop runs it; the adopter's settings are not read: set expect.failover for theirs)"
		out[sv.Name] = b
	}
	return out
}

// Inject puts f in place through the nemesis (recorded on the cluster
// before it acts).
func (l *Lab) Inject(ctx context.Context, f lab.Fault) (lab.Injected, error) {
	l.mu.Lock()
	stop := l.stop
	l.mu.Unlock()
	if stop != nil {
		return lab.Injected{Fault: f}, fmt.Errorf("%s %s not injected: %w: %s", f.Action, f.Target, lab.ErrStopped, stop.Reason)
	}
	l.mu.Lock()
	l.injecting = append(l.injecting, lab.Injected{Fault: f})
	l.mu.Unlock()
	af, err := l.nemesis.Inject(ctx, f)
	if rerr := l.refresh(context.WithoutCancel(ctx)); rerr != nil {
		l.log.Warn("k3s: reading the faults in place", "err", rerr)
	}
	l.mu.Lock()
	l.injecting = slices.DeleteFunc(l.injecting, func(in lab.Injected) bool { return in.Key() == f.Key() })
	l.mu.Unlock()
	return af, err
}

// Recover undoes f. The deployed members it kept down (killed, or on a
// node it powered off) are started again, as the labs do at a fault's
// end: an attached member's controller does that for the adopter.
func (l *Lab) Recover(ctx context.Context, f lab.Fault) error {
	l.comingBack(func(in lab.Injected) bool { return in.Key() == f.Key() })
	err := l.nemesis.Recover(ctx, f)
	if rerr := l.refresh(context.WithoutCancel(ctx)); rerr != nil {
		l.log.Warn("k3s: reading the faults in place", "err", rerr)
	}
	if err != nil {
		return err
	}
	return l.restartDeployed(ctx, []lab.Fault{f})
}

// restartDeployed starts again the deployed members the recovered faults
// kept down and no fault still in place does: a killed member (its pod
// ended by SIGKILL), and the members of a node powered off (their pods died
// with it, whatever the API server still shows). Their data is on their
// nodes, so they rejoin with it; a destroyed node's members lose theirs
// first (their files removed), and rejoin as new members.
func (l *Lab) restartDeployed(ctx context.Context, recovered []lab.Fault) error {
	still := topology.NewState(l.topo)
	killed := map[string]bool{}
	for _, in := range l.ActiveFaults() {
		if in.Action == scenarios.ActionKill {
			killed[in.Target] = true
		} else if tg, err := scenarios.ParseTarget(in.Target); err == nil && isPower(in.Action) {
			if err := still.Apply(topology.Fault{Action: in.Action, Target: tg}); err != nil {
				return err
			}
		}
	}
	was, destroyed := topology.NewState(l.topo), topology.NewState(l.topo)
	kills := map[string]bool{}
	for _, f := range recovered {
		if f.Action == scenarios.ActionKill {
			kills[f.Target] = true
		} else if tg, err := scenarios.ParseTarget(f.Target); err == nil && isPower(f.Action) {
			if err := was.Apply(topology.Fault{Action: f.Action, Target: tg}); err != nil {
				return err
			}
			if f.Action == scenarios.ActionDestroy {
				if err := destroyed.Apply(topology.Fault{Action: f.Action, Target: tg}); err != nil {
					return err
				}
			}
		}
	}
	// a worker is down only with its node: a kill of one is refused
	errs := []error{l.restartWorkers(ctx, func(n *topology.Node) bool { return !was.Up(n) && still.Up(n) })}
	down := comeback{still: still, was: was, destroyed: destroyed, killed: killed, kills: kills}
	// the services side by side, in the stages of deploy order (a
	// Kafka's brokers need their ZooKeeper back first): one after the
	// other, the rack of the quickstart on k3s took 1 min 23 s to 2 min
	// 28 s to be back, its etcd member alone 54 s
	var mu sync.Mutex
	for _, stage := range deployStages(l.topo.Services) {
		var wg sync.WaitGroup
		for _, sv := range stage {
			if d := l.deployed[sv.Name]; d != nil {
				wg.Go(func() {
					err := l.restartService(ctx, sv.Name, d, down)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// comeback is what restartDeployed starts again: the nodes still down
// (still) and those down before the recovery (was, destroyed among
// them); the members killed by a fault still in place (killed) and by a
// recovered one (kills), by target.
type comeback struct {
	still, was, destroyed *topology.State
	killed, kills         map[string]bool
}

// restartService starts again, one after the other, the members of a
// deployed service that down says come back.
func (l *Lab) restartService(ctx context.Context, name string, d *deploy.Service, down comeback) error {
	var errs []error
	for i, m := range d.Cluster.Members {
		target := "service/" + name + "/" + strconv.Itoa(i)
		node := l.topo.Node(m.Node)
		if down.killed[target] || !down.still.Up(node) {
			continue // still down by a fault in place
		}
		var err error
		switch {
		case !down.destroyed.Up(node):
			// its disks are gone with the node: the member rejoins
			// without data, as a replaced server's would
			l.log.Info("k3s: starting a member of a destroyed node anew, without its data", "member", m.Name, "node", m.Node)
			if err = d.Wipe(ctx, i); err == nil {
				err = d.Reset(ctx, i)
			}
		case !down.was.Up(node):
			l.log.Info("k3s: starting a member of a node powered on again", "member", m.Name, "node", m.Node)
			err = d.Reset(ctx, i)
		case down.kills[target]:
			l.log.Info("k3s: starting a killed member again", "member", m.Name)
			err = d.Restart(ctx, i)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restart %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}

func isPower(action string) bool {
	return action == scenarios.ActionPowerOff || action == scenarios.ActionDestroy
}

// RecoverAll undoes every fault recorded for the scenario, then starts
// again the deployed members they kept down.
func (l *Lab) RecoverAll(ctx context.Context) error {
	l.comingBack(func(lab.Injected) bool { return true })
	var recovered []lab.Fault
	for _, in := range l.ActiveFaults() {
		recovered = append(recovered, in.Fault)
	}
	err := l.nemesis.RecoverAll(ctx)
	if rerr := l.refresh(context.WithoutCancel(ctx)); rerr != nil {
		l.log.Warn("k3s: reading the faults in place", "err", rerr)
	}
	if err != nil {
		return err
	}
	return l.restartDeployed(ctx, recovered)
}

// Close ends the guard's watch and the probes' connections (lab.Closer);
// the faults and the cluster are as they were.
func (l *Lab) Close() error {
	l.closeWatch.Do(func() {
		if l.endWatch != nil {
			l.endWatch()
			<-l.watchDone
		}
	})
	errs := []error{l.prober.Close()}
	if l.relays != nil {
		errs = append(errs, l.relays.Close())
	}
	for _, d := range l.deployed {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}

// Stopped delivers the stop condition, once (lab.Guarded).
func (l *Lab) Stopped() <-chan error { return l.stopped }

// watch starts the stop conditions' guard (package guard), from a lab
// whose services are healthy until Close: when something outside the
// faults goes wrong, every fault is recovered, new ones are refused, and
// Stopped says why.
func (l *Lab) watch(apiBudget, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopped, l.endWatch, l.watchDone = make(chan error, 1), cancel, make(chan struct{})
	g := &guard.Guard{Cluster: l.cluster, Topology: l.topo, NodeMap: l.nm, Log: l.log, APIBudget: apiBudget, Interval: interval,
		Faults: l.guarded, Looked: l.looked}
	go func() {
		defer close(l.watchDone)
		var stop *guard.Stop
		if err := g.Watch(ctx); !errors.As(err, &stop) {
			return
		}
		l.mu.Lock()
		l.stop = stop
		l.mu.Unlock()
		l.log.Warn("k3s: stop condition: recovering every fault", "reason", stop.Reason)
		rctx, rcancel := context.WithTimeout(context.Background(), 2*nemesis.DefaultWait)
		err := l.RecoverAll(rctx)
		rcancel()
		if err != nil {
			l.stopped <- fmt.Errorf("%w: %s; not every fault recovered: %v", lab.ErrStopped, stop.Reason, err)
			return
		}
		l.stopped <- fmt.Errorf("%w: %s; every fault recovered", lab.ErrStopped, stop.Reason)
	}()
}

// guarded are the faults the guard excuses nodes for: those in place,
// those being injected, and those recovered whose nodes may still be
// coming back.
func (l *Lab) guarded() []lab.Injected {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append(slices.Clone(l.active), l.injecting...)
	for _, r := range l.recovering {
		out = append(out, r.Injected)
	}
	return out
}

// recovered is a fault recovered, and when.
type recovered struct {
	lab.Injected
	at time.Time
}

// RecoverySettle is how long after its recovery a fault still excuses
// its nodes' NotReady: a node cut off for less than the node controller's
// grace period (40-50 s) may still turn NotReady after the heal, while its
// kubelet's connection, silent through the cut, waits out its TCP
// retransmission backoff before it renews its lease (seen on the kind
// test cluster: dc2-w NotReady 3 s after a 40 s isolation ended, which
// stopped the run).
const RecoverySettle = 90 * time.Second

// looked forgets the recovered faults once every node is Ready again and
// they were recovered RecoverySettle ago.
func (l *Lab) looked(lk guard.Look) {
	if lk.Nodes == 0 || len(lk.NotReady) > 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recovering = slices.DeleteFunc(l.recovering, func(r recovered) bool { return time.Since(r.at) >= RecoverySettle })
}

// comingBack moves the active faults which says to recovering, before
// they are recovered: their nodes may come back slowly.
func (l *Lab) comingBack(which func(lab.Injected) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, in := range l.active {
		if which(in) {
			l.recovering = append(l.recovering, recovered{Injected: in, at: time.Now()})
		}
	}
}

// ActiveFaults are the faults in place as last read from the cluster.
func (l *Lab) ActiveFaults() []lab.Injected {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.active)
}
