package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// ActiveFaults returns the faults in place now.
func (l *Lab) ActiveFaults() []lab.Injected {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.st.Faults)
}

// Inject puts a fault in place. It is idempotent: injecting a fault that is
// already active changes nothing. It returns the fault as recorded (with a
// member resolved).
func (l *Lab) Inject(ctx context.Context, f lab.Fault) (lab.Injected, error) {
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return lab.Injected{}, err
	}
	f.Target = tg.String()
	af := lab.Injected{Fault: f, Since: time.Now().UTC()}
	if tg.Kind == scenarios.TargetService {
		m, err := l.resolveMember(ctx, tg)
		if err != nil {
			return af, err
		}
		af.Member = m
		af.Target = fmt.Sprintf("service/%s/%d", tg.Name, m)
	}
	for _, a := range l.ActiveFaults() {
		if a.Key() == af.Key() {
			return a, nil
		}
	}
	// Record first: if chaosloop dies half-way, Recover still undoes it.
	l.mu.Lock()
	l.st.Faults = append(l.st.Faults, af)
	err = l.save()
	l.mu.Unlock()
	if err != nil {
		return af, err
	}
	l.opts.Log.Info("inject", "action", af.Action, "target", af.Target)
	return af, l.apply(ctx, af, true)
}

// Recover undoes a fault; recovering a fault that is not active is a no-op.
func (l *Lab) Recover(ctx context.Context, f lab.Fault) error {
	tg, err := scenarios.ParseTarget(f.Target)
	if err != nil {
		return err
	}
	key := f.Action + " " + tg.String()
	l.mu.Lock()
	var af *lab.Injected
	for i := range l.st.Faults {
		a := l.st.Faults[i]
		if a.Key() == key || (tg.Kind == scenarios.TargetService && a.Action == f.Action && strings.HasPrefix(a.Target, "service/"+tg.Name+"/") && tg.Member == "") {
			af = &a
			break
		}
	}
	l.mu.Unlock()
	if af == nil {
		return nil
	}
	l.opts.Log.Info("recover", "action", af.Action, "target", af.Target)
	if err := l.apply(ctx, *af, false); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.Faults = slices.DeleteFunc(l.st.Faults, func(a lab.Injected) bool { return a.Key() == af.Key() })
	return l.save()
}

// RecoverAll undoes every active fault, newest first. Power comes back to
// every node at once, as after a data-centre-wide outage, so that members
// that need each other's quorum to start (Galera re-bootstrapped, KRaft
// voters, Patroni's store) all run before any of them is awaited: healed
// one fault at a time, the first node back would wait for peers that are
// still dark.
func (l *Lab) RecoverAll(ctx context.Context) error {
	var errs []error
	fs := l.ActiveFaults()
	for i := len(fs) - 1; i >= 0; i-- {
		f := fs[i]
		if isPower(f.Action) {
			continue
		}
		if err := l.Recover(ctx, lab.Fault{Action: f.Action, Target: f.Target}); err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", f.Key(), err))
		}
	}
	if slices.ContainsFunc(fs, func(f lab.Injected) bool { return isPower(f.Action) }) {
		l.opts.Log.Info("recover", "action", "power-on", "target", "every node")
		if err := l.powerTo(ctx, nil, false); err != nil {
			errs = append(errs, fmt.Errorf("recover power: %w", err))
		} else {
			l.mu.Lock()
			l.st.Faults = slices.DeleteFunc(l.st.Faults, func(a lab.Injected) bool { return isPower(a.Action) })
			errs = append(errs, l.save())
			l.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func isPower(action string) bool {
	return action == scenarios.ActionPowerOff || action == scenarios.ActionDestroy
}

func (l *Lab) apply(ctx context.Context, af lab.Injected, inject bool) error {
	tg, err := scenarios.ParseTarget(af.Target)
	if err != nil {
		return err
	}
	switch af.Action {
	case scenarios.ActionPowerOff, scenarios.ActionDestroy:
		return l.power(ctx, af, inject)
	case scenarios.ActionIsolate:
		if inject {
			return l.net.Isolate(ctx, tg)
		}
		return l.net.Heal(ctx, tg)
	case scenarios.ActionKill:
		ss, err := l.service(tg.Name)
		if err != nil {
			return err
		}
		if inject {
			return l.signalMember(ctx, ss, af.Member, syscall.SIGKILL)
		}
		return l.restartMember(ctx, ss, af.Member)
	case scenarios.ActionPause:
		ss, err := l.service(tg.Name)
		if err != nil {
			return err
		}
		if inject {
			return l.signalMember(ctx, ss, af.Member, syscall.SIGSTOP)
		}
		return l.signalMember(ctx, ss, af.Member, syscall.SIGCONT)
	case scenarios.ActionLatency:
		return l.latency(ctx, tg, af, inject)
	}
	return fmt.Errorf("unknown action %q", af.Action)
}

// poweredOff returns the nodes the active power faults leave without power.
func (l *Lab) poweredOff(faults []lab.Injected) (map[string]bool, error) {
	st := topology.NewState(l.topo)
	for _, f := range faults {
		if f.Action != scenarios.ActionPowerOff && f.Action != scenarios.ActionDestroy {
			continue
		}
		tg, err := scenarios.ParseTarget(f.Target)
		if err != nil {
			return nil, err
		}
		if err := st.Apply(topology.Fault{Action: f.Action, Target: tg}); err != nil {
			return nil, err
		}
	}
	off := map[string]bool{}
	for _, n := range st.NodesDown() {
		off[n] = true
	}
	return off, nil
}

// power turns nodes off (a feed takes a node down only with every feed of
// its rack) or back on, restarting their members. destroy also wipes the
// members' data, so that they rejoin from scratch.
func (l *Lab) power(ctx context.Context, af lab.Injected, inject bool) error {
	all := l.ActiveFaults()
	without := slices.DeleteFunc(slices.Clone(all), func(a lab.Injected) bool { return a.Key() == af.Key() })
	if !inject {
		all = without
	}
	return l.powerTo(ctx, all, af.Action == scenarios.ActionDestroy && inject)
}

// powerTo brings every node's power (and every site router's) to what the
// faults all leave, wiping the data of nodes it powers off when wipe.
func (l *Lab) powerTo(ctx context.Context, all []lab.Injected, wipe bool) error {
	off, err := l.poweredOff(all)
	if err != nil {
		return err
	}
	var errs []error
	// Site routers first: on recovery, the WAN is back before any member
	// restarts.
	dark := darkSites(all)
	for _, site := range l.topo.Sites {
		if want := !dark[site.Name]; l.net.RouterPowered(site.Name) != want {
			errs = append(errs, l.net.SetRouterPower(ctx, site.Name, want))
		}
	}
	var back []string
	for _, n := range l.topo.Nodes {
		switch {
		case off[n.Name] && l.net.Powered(n.Name):
			if l.mach != nil {
				// the machine first: the network's power-off kills what
				// is left in its namespace, which a container engine
				// would take for a crash and restart
				errs = append(errs, l.mach.PowerOff(ctx, n.Name))
			}
			if err := l.net.PowerOff(ctx, n.Name); err != nil {
				errs = append(errs, err)
			}
			if wipe {
				errs = append(errs, l.wipe(n.Name))
				if w, ok := l.mach.(Wiper); ok {
					errs = append(errs, w.Wipe(ctx, n.Name))
				}
			}
		case !off[n.Name] && !l.net.Powered(n.Name):
			if err := l.net.PowerOn(ctx, n.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			if l.mach != nil {
				if err := l.mach.PowerOn(ctx, n.Name); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			back = append(back, n.Name)
		}
	}
	// Every node has power again before any member restarts: a cluster
	// re-formed from one node must be able to reach the others at once.
	// Members that need each other to start (KRaft voters) are all
	// launched first.
	errs = append(errs, l.launchNodes(ctx, back))
	errs = append(errs, l.restartNodes(ctx, back))
	return errors.Join(errs...)
}

// darkSites are the sites a power-off or destroy of the whole site leaves
// without power, WAN router included (spec section 4); rack, feed and node
// power-offs leave the router running.
func darkSites(faults []lab.Injected) map[string]bool {
	dark := map[string]bool{}
	for _, f := range faults {
		if f.Action != scenarios.ActionPowerOff && f.Action != scenarios.ActionDestroy {
			continue
		}
		if tg, err := scenarios.ParseTarget(f.Target); err == nil && tg.Kind == scenarios.TargetSite {
			dark[tg.Name] = true
		}
	}
	return dark
}

// wipe removes the data of every member on a node (destroy: disks lost).
func (l *Lab) wipe(node string) error {
	var errs []error
	for _, ss := range l.st.Services {
		for _, m := range ss.Cluster.Members {
			if m.Node == node {
				errs = append(errs, os.RemoveAll(m.DataDir))
			}
		}
	}
	return errors.Join(errs...)
}

// launcher is an engine whose members can be launched without waiting for
// them to answer.
type launcher interface {
	Launch(ctx context.Context, c *engines.Cluster, i int) error
}

// launchNodes launches the members on nodes that can be launched without
// waiting.
func (l *Lab) launchNodes(ctx context.Context, nodes []string) error {
	var errs []error
	for _, ss := range l.st.Services {
		if ss.Engine == EngineNone {
			continue
		}
		e, err := l.eng.get(ss.Engine, ss)
		if err != nil {
			return err
		}
		ln, ok := e.(launcher)
		if !ok {
			continue
		}
		for _, m := range ss.Cluster.Members {
			if slices.Contains(nodes, m.Node) {
				errs = append(errs, ln.Launch(ctx, &ss.Cluster, m.Index))
			}
		}
	}
	return errors.Join(errs...)
}

// restartNodes starts again every member placed on the nodes, each
// service's members in turn and the services side by side: one after the
// other, a rack's heal waited for a Kafka broker before it started the
// ledger database, and a busy machine took 59 s to bring a rack back
// (Galera's member only started 25 s after the power did).
func (l *Lab) restartNodes(ctx context.Context, nodes []string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, ss := range l.st.Services {
		var members []int
		for _, m := range ss.Cluster.Members {
			if slices.Contains(nodes, m.Node) {
				members = append(members, m.Index)
			}
		}
		if len(members) == 0 {
			continue
		}
		wg.Go(func() {
			for _, i := range members {
				if err := l.restartMember(ctx, ss, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Lab) restartMember(ctx context.Context, ss *serviceState, i int) error {
	if ss.Engine == EngineNone {
		return l.startWorker(ctx, ss, i)
	}
	e, err := l.eng.get(ss.Engine, ss)
	if err != nil {
		return err
	}
	// A cluster that lost its quorum entirely (Galera with no Primary
	// component left) does not take a member back by itself: it has to be
	// re-bootstrapped from its most advanced member, which is what an
	// operator does after such an outage.
	if r, ok := e.(recoverer); ok {
		sctx, cancel := context.WithTimeout(ctx, StatusTimeout)
		st, serr := e.Status(sctx, &ss.Cluster)
		cancel()
		if serr == nil && !st.Writable {
			l.opts.Log.Warn("no quorum left: re-bootstrapping the cluster", "service", ss.Name)
			if err := r.Recover(ctx, &ss.Cluster); err != nil {
				return fmt.Errorf("recover %s: %w", ss.Name, err)
			}
			return nil
		}
	}
	if err := e.StartMember(ctx, &ss.Cluster, i); err != nil {
		return fmt.Errorf("restart %s member %d: %w", ss.Name, i, err)
	}
	return nil
}

// recoverer is an engine that can re-form a cluster that lost quorum.
type recoverer interface {
	Recover(ctx context.Context, c *engines.Cluster) error
}

// memberProcs returns the recorded processes of a member (an engine may run
// several: Redis and its Sentinel, PostgreSQL, Patroni and FerretDB).
func (l *Lab) memberProcs(ss *serviceState, i int) ([]*proc.Record, error) {
	recs, err := proc.List(l.dir)
	if err != nil {
		return nil, err
	}
	prefix := ss.Cluster.Members[i].Name + "."
	var out []*proc.Record
	for _, r := range recs {
		if strings.HasPrefix(r.Name, prefix) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (l *Lab) signalMember(ctx context.Context, ss *serviceState, i int, sig syscall.Signal) error {
	if pl, ok := ss.Cluster.Launcher.(ProcessLister); ok {
		return signalListed(ctx, pl, ss, i, sig)
	}
	recs, err := l.memberProcs(ss, i)
	if err != nil {
		return err
	}
	if len(recs) == 0 && ss.Engine != EngineNone {
		return fmt.Errorf("%s member %d has no running process", ss.Name, i)
	}
	var errs []error
	for _, r := range recs {
		if err := r.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resolveMember turns service/NAME/INDEX or service/NAME/leader into a
// member index.
func (l *Lab) resolveMember(ctx context.Context, tg scenarios.Target) (int, error) {
	ss, err := l.service(tg.Name)
	if err != nil {
		return 0, err
	}
	switch tg.Member {
	case "":
		return 0, fmt.Errorf("target %s: name a member (service/%s/INDEX or service/%s/leader)", tg.String(), tg.Name, tg.Name)
	case "leader":
		info := l.serviceStatus(ctx, ss)
		for _, m := range info.Members {
			switch m.Role {
			case "leader", "primary", "controller-leader":
				return m.Index, nil
			}
		}
		return 0, fmt.Errorf("service %s has no leader or primary now", tg.Name)
	}
	i, err := strconv.Atoi(tg.Member)
	if err != nil || i < 0 || i >= len(ss.Cluster.Members) {
		return 0, fmt.Errorf("target %s: no such member", tg.String())
	}
	return i, nil
}

// signalListed signals every process of a member that a backend's
// launcher names (kind: its pods' processes, in their nodes).
func signalListed(ctx context.Context, pl ProcessLister, ss *serviceState, i int, sig syscall.Signal) error {
	names, err := pl.Processes(ctx, ss.Cluster.Members[i])
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("%s member %d has no running process", ss.Name, i)
	}
	var errs []error
	for _, n := range names {
		if err := ss.Cluster.Launcher.Signal(ctx, n, sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
