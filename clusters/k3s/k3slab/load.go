package k3slab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// What a run that drives the transfer load needs of the cluster: the
// services chaosloop deployed, reached from their own nodes (setup, the
// final state), a client entering through the nodes of
// the client service (the relay of their agents), and the handlers as
// worker pods on the nodes of theirs.

// Drives says why a run on the cluster cannot drive the transfer load, or
// "" when it can: chaosloop deploys every service (canDeploy: --registry
// given; no services[].attach), since only its own engines' credentials
// and topics are known to it; the adopter's services are observed only.
func Drives(topo *topology.Topology, canDeploy bool) string {
	if !canDeploy {
		return Observing + " (--registry not given: nothing is deployed)"
	}
	for _, sv := range topo.Services {
		if sv.Spec.Attach != nil {
			return Observing + " (service " + sv.Name + " is the adopter's own, attached: chaosloop drives load only through services it deployed)"
		}
	}
	return ""
}

// deployedOf is the deployed service named service, or why there is none.
func (l *Lab) deployedOf(service string) (*deploy.Service, error) {
	if l.topo.Service(service) == nil {
		return nil, fmt.Errorf("unknown service %q", service)
	}
	d, ok := l.deployed[service]
	if !ok {
		return nil, fmt.Errorf("k3s: service %s was not deployed by chaosloop: %s", service, Observing)
	}
	return d, nil
}

// engineOf is service's deployed engine as T, or an error naming what
// service is not (kind).
func engineOf[T any](l *Lab, service, kind string) (*deploy.Service, T, error) {
	var zero T
	d, err := l.deployedOf(service)
	if err != nil {
		return nil, zero, err
	}
	t, ok := d.Engine.(T)
	if !ok {
		return nil, zero, fmt.Errorf("service %s is not a %s service", service, kind)
	}
	return d, t, nil
}

// Endpoints are a deployed service's client endpoints (its members' node
// addresses at the offset ports); none for a stateless service.
func (l *Lab) Endpoints(service string) ([]string, error) {
	if sv := l.topo.Service(service); sv != nil && sv.Kind == scenarios.KindStateless {
		return nil, nil
	}
	d, e, err := engineOf[interface {
		Endpoints(*engines.Cluster) []string
	}](l, service, "stateful")
	if err != nil {
		return nil, err
	}
	return e.Endpoints(d.Cluster), nil
}

// MySQLDSNs are a deployed Galera's DSNs, member order.
func (l *Lab) MySQLDSNs(service string) ([]string, error) {
	d, e, err := engineOf[interface {
		DSN(*engines.Cluster, int) (string, error)
	}](l, service, "mysql")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(d.Cluster.Members))
	for i := range out {
		if out[i], err = e.DSN(d.Cluster, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RedisSentinels are a deployed Redis's master name and Sentinels.
func (l *Lab) RedisSentinels(service string) (string, []string, error) {
	d, _, err := engineOf[*redis.Engine](l, service, "redis")
	if err != nil {
		return "", nil, err
	}
	return redis.MasterName(d.Cluster), redis.SentinelAddrs(d.Cluster), nil
}

// PrepareDocstore creates collections in a deployed document store.
func (l *Lab) PrepareDocstore(ctx context.Context, service, db string, collections []string) error {
	d, e, err := engineOf[interface {
		Prepare(context.Context, *engines.Cluster, string, []string) error
	}](l, service, "mongodb")
	if err != nil {
		return err
	}
	return e.Prepare(ctx, d.Cluster, db, collections)
}

// PreferPrimaries puts each deployed Redis's primary back on member 0, as
// analyze's model has it; the adopter's services are theirs to place.
func (l *Lab) PreferPrimaries(ctx context.Context) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(l.deployed)) {
		if r, ok := l.deployed[name].Engine.(*redis.Engine); ok {
			if err := r.PreferPrimary(ctx, l.deployed[name].Cluster); err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PreferLeaders makes the first broker of every partition of each
// deployed Kafka its leader (see lab.Preparer).
func (l *Lab) PreferLeaders(ctx context.Context, wait time.Duration) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(l.deployed)) {
		k, ok := l.deployed[name].Engine.(interface {
			ElectPreferredLeaders(context.Context, *engines.Cluster, time.Duration) error
		})
		if !ok {
			continue
		}
		if err := k.ElectPreferredLeaders(ctx, l.deployed[name].Cluster, wait); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// DialFromHostOf dials a deployed member's address from its node, through
// the node's agent: only the member's own state decides whether it
// answers, whatever cuts its node off its peers.
func (l *Lab) DialFromHostOf(ctx context.Context, network, address string) (lab.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("k3s: dial %s: %w", address, err)
	}
	var at *deploy.Service
	for _, name := range slices.Sorted(maps.Keys(l.deployed)) {
		d := l.deployed[name]
		if d.Serves(ap) {
			return d.Cluster.Dialer()(ctx, network, address)
		}
		if at == nil && d.At(ap.Addr()) {
			at = d
		}
	}
	if at == nil {
		return nil, fmt.Errorf("k3s: dial %s: no member chaosloop deployed is at %s", address, ap.Addr())
	}
	// a port no engine says it serves: any pod of the node reaches it
	return at.Cluster.Dialer()(ctx, network, address)
}

// relayTimeout bounds one dial through a node's agent: the exec into the
// agent's pod and the agent's own dial (agent.Relay: 2 s).
const relayTimeout = 6 * time.Second

// DialFromAny is a dialer for a client that enters the cluster through the
// nodes of service, as through a load balancer in front of them
// (lab.Rotate): each connection is relayed by the agent on one of those
// nodes, from the node's own network, so the node's faults (the agents'
// isolate and latency rules) apply to it; a node powered off by a fault
// in place is passed over.
func (l *Lab) DialFromAny(service string) (lab.DialFunc, error) {
	sv := l.topo.Service(service)
	if sv == nil {
		return nil, fmt.Errorf("unknown service %q", service)
	}
	if l.relays == nil {
		return nil, errors.New("k3s: no client configuration to reach the agents with")
	}
	relays := l.relays
	return lab.Rotate(lab.Entries{
		N:      len(sv.Members),
		Usable: func(i int) bool { return !l.poweredOff(sv.Members[i]) },
		Through: func(ctx context.Context, i int, network, address string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, relayTimeout)
			defer cancel()
			return relays.Dial(ctx, l.nm.ClusterNode(sv.Members[i].Name), network, address)
		},
		Name: func(i int) string { return "node/" + l.nm.ClusterNode(sv.Members[i].Name) },
		None: "every node of " + service + " is powered off",
	}), nil
}

// poweredOff says whether a fault in place powered n off.
func (l *Lab) poweredOff(n *topology.Node) bool {
	st := topology.NewState(l.topo)
	for _, in := range l.ActiveFaults() {
		if tg, err := scenarios.ParseTarget(in.Target); err == nil && isPower(in.Action) {
			if st.Apply(topology.Fault{Action: in.Action, Target: tg}) != nil {
				return false
			}
		}
	}
	return !st.Up(n)
}

// StartWorkers runs w on every member of a stateless service chaosloop
// placed (not attached) whose node is not powered off, each a pod on its
// node from the agents' image (deploy.Workers); restartDeployed runs it
// again on the nodes that come back. Idempotent.
func (l *Lab) StartWorkers(ctx context.Context, service string, w lab.Worker) error {
	sv := l.topo.Service(service)
	switch {
	case sv == nil:
		return fmt.Errorf("unknown service %q", service)
	case sv.Kind != scenarios.KindStateless:
		return fmt.Errorf("service %s is a %s service; workers run on stateless services", service, sv.Kind)
	case sv.Spec.Attach != nil:
		return fmt.Errorf("service %s is the adopter's own (attached): chaosloop runs no workers there", service)
	}
	ws, err := l.workersOf(ctx, sv)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	l.work[service] = w
	l.wmu.Unlock()
	var errs []error
	for i, n := range sv.Members {
		if !l.poweredOff(n) {
			errs = append(errs, ws.Start(ctx, i, w))
		}
	}
	return errors.Join(errs...)
}

// workersOf is sv's workers, placed on first use.
func (l *Lab) workersOf(ctx context.Context, sv *topology.Service) (*deploy.Workers, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if ws, ok := l.workers[sv.Name]; ok {
		return ws, nil
	}
	image, err := l.agents.Image(ctx)
	if err != nil {
		return nil, fmt.Errorf("service %s's workers run from the agents' image: %w", sv.Name, err)
	}
	ws, err := deploy.NewWorkers(ctx, deploy.Options{Cluster: l.cluster, Scenario: l.topo.Name, NodeMap: l.nm,
		PortOffset: l.portOffset, Log: l.log, Relays: l.relays}, sv, image)
	if err != nil {
		return nil, err
	}
	l.workers[sv.Name] = ws
	return ws, nil
}

// StopWorkers ends a service's workers and forgets them.
func (l *Lab) StopWorkers(ctx context.Context, service string) error {
	l.wmu.Lock()
	ws, ok := l.workers[service]
	delete(l.workers, service)
	delete(l.work, service)
	l.wmu.Unlock()
	if !ok {
		return nil
	}
	return ws.Stop(ctx)
}

// restartWorkers starts again the workers of the members on the nodes
// back says the recovered faults powered off and no fault in place still
// does: their pods died with their nodes.
func (l *Lab) restartWorkers(ctx context.Context, back func(n *topology.Node) bool) error {
	l.wmu.Lock()
	type job struct {
		ws *deploy.Workers
		w  lab.Worker
		sv *topology.Service
	}
	var jobs []job
	for _, name := range slices.Sorted(maps.Keys(l.workers)) {
		jobs = append(jobs, job{l.workers[name], l.work[name], l.topo.Service(name)})
	}
	l.wmu.Unlock()
	var errs []error
	for _, j := range jobs {
		for i, n := range j.sv.Members {
			if !back(n) {
				continue
			}
			l.log.Info("k3s: starting a worker of a node powered on again", "service", j.sv.Name, "member", i, "node", n.Name)
			if err := j.ws.Reset(ctx, i, j.w); err != nil {
				errs = append(errs, fmt.Errorf("worker %s/%d: %w", j.sv.Name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// workersStatus: a worker's member is up while its node is not powered
// off and, once the run started the service's workers, while its worker's
// pod runs.
func (l *Lab) workersStatus(ctx context.Context, sv *topology.Service) lab.ServiceStatus {
	l.wmu.Lock()
	ws := l.workers[sv.Name]
	l.wmu.Unlock()
	si := lab.ServiceStatus{Name: sv.Name, Kind: sv.Kind, Engine: local.EngineNone, Healthy: true}
	for i, n := range sv.Members {
		up := !l.poweredOff(n)
		detail := ""
		if ws != nil && up && !ws.Running(ctx, i) {
			up, detail = false, "its worker's pod does not run"
		}
		si.Members = append(si.Members, lab.Member{Index: i, Name: deploy.MemberName(sv.Name, i), Node: n.Name, Up: up, Healthy: up, Detail: detail})
		si.Healthy = si.Healthy && up
		si.Writable = si.Writable || up
	}
	return si
}
