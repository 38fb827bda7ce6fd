// Package lab is the seam between chaosloop and the backends that stand a
// scenario up: the local lab today (clusters/local), kind and K3S nodes
// later. The runner, the workload, the fault scheduler and the reports
// know a backend only through these interfaces and types, so a second
// backend is a new implementation, not a change to them.
//
// The split follows kind's providers (a Provider brings clusters up, lists
// and deletes them) and Jepsen's db/client/nemesis (a Lab is observed, is
// reached by clients, and has faults injected into it): each interface is
// small, and each method says what it promises.
package lab

import (
	"context"
	"errors"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Provider stands labs up and takes them down on one kind of backend.
type Provider interface {
	// Name is the backend's name, what --on selects ("local").
	Name() string
	// Capabilities says which faults the backend can inject; it needs no
	// lab up, so a plan is checked before anything starts.
	Capabilities() Capabilities
	// Up stands sc's lab up, or reuses and repairs the one already up under
	// sc.Name, and returns once every service is healthy. It is idempotent.
	// On a failure after the lab exists it returns the lab with the error,
	// left as it is for inspection.
	Up(ctx context.Context, sc *scenarios.Scenario) (Lab, error)
	// Open attaches to a lab that is up, by name, changing nothing.
	Open(ctx context.Context, name string) (Lab, error)
	// List names the labs with state on this backend, sorted.
	List(ctx context.Context) ([]string, error)
	// Down removes a lab by name — every process, fault, network rule and
	// piece of state — also when its chaosloop crashed mid-way. A name
	// with nothing left behind is an error that says so.
	Down(ctx context.Context, name string) error
}

// Lab is one scenario stood up on a backend.
type Lab interface {
	// Name is the lab's (the scenario's) name.
	Name() string
	// Topology is the placed model the lab was built from.
	Topology() *topology.Topology
	Observer
	Endpoints
	Preparer
	Workers
	Injector
}

// ErrStopped is wrapped by the error a Guarded lab's Stopped delivers.
var ErrStopped = errors.New("stop condition")

// Guarded is a Lab that watches what its faults must not do (a real
// cluster's stop conditions: a node outside the faults NotReady, the API
// server silent too long). Stopped delivers, once, why it stopped (an
// error wrapping ErrStopped); by then it has recovered every fault and
// refuses new ones. A run stops its schedule there and is judged on what
// it saw.
type Guarded interface {
	Stopped() <-chan error
}

// Closer is a Lab that holds connections of its own (the k3s backend's
// probes): Close releases them when its user is done; the lab stays up.
type Closer interface {
	Close() error
}

// Observer sees the lab's services as they are now.
type Observer interface {
	// Status observes every service in parallel; each probe is bounded,
	// so a frozen member makes its service's status time out, not the call.
	Status(ctx context.Context) (*Status, error)
	// ServiceStatus observes one service; an unknown name is an error.
	// A probe that ran out of time is reported in the status (TimedOut),
	// not as an error.
	ServiceStatus(ctx context.Context, service string) (ServiceStatus, error)
	// FailoverBudgets is each service's failover budget, by name, derived
	// from the settings the backend gives its engines.
	FailoverBudgets() map[string]Budget
}

// Endpoints is what the workload's clients need to reach the services.
type Endpoints interface {
	// Endpoints are a service's client endpoints (host:port, or a URI for
	// a document store) in member order, nil for a stateless service.
	Endpoints(service string) ([]string, error)
	// MySQLDSNs are a mysql service's DSNs in member order; with async
	// replication only the first takes writes.
	MySQLDSNs(service string) ([]string, error)
	// RedisSentinels are a redis service's Sentinel master name and
	// Sentinel addresses.
	RedisSentinels(service string) (master string, sentinels []string, err error)
	// DialFromAny is a dialer for a client that enters the lab through the
	// nodes of service, as through a load balancer in front of them: it
	// survives the loss of one of those nodes, and its connections fail
	// fast when their path goes dark.
	DialFromAny(service string) (DialFunc, error)
	// DialFromHostOf dials a member's address the way the lab's own probes
	// do (from the member's own host): setup and final-state reads use it,
	// and only the member's own state decides whether it answers.
	DialFromHostOf(ctx context.Context, network, address string) (Conn, error)
}

// Preparer puts the lab into the layout a run starts from.
type Preparer interface {
	// PreferPrimaries puts every primary/replica service's primary back on
	// member 0, as analyze's model has it. Call it with no load running.
	PreferPrimaries(ctx context.Context) error
	// PreferLeaders makes the first broker of every Kafka partition's
	// replica list its leader, waiting at most wait per service; the error
	// names the partitions led elsewhere.
	PreferLeaders(ctx context.Context, wait time.Duration) error
	// PrepareDocstore creates collections in a document-store service so
	// that every member serves them.
	PrepareDocstore(ctx context.Context, service, db string, collections []string) error
}

// Workers run a program on every member of a stateless service.
type Workers interface {
	// StartWorkers runs w on every member of a stateless service whose
	// node has power, and again on each member whose node comes back. It
	// is idempotent.
	StartWorkers(ctx context.Context, service string, w Worker) error
	// StopWorkers stops a service's workers and forgets them.
	StopWorkers(ctx context.Context, service string) error
}

// Injector injects faults and recovers them (Jepsen's nemesis).
type Injector interface {
	// Inject puts a fault in place and records it before it acts, so that a
	// later chaosloop recovers it after a crash. Injecting a fault already
	// active changes nothing. It returns the fault as recorded, its member
	// resolved (service/NAME/leader becomes an index).
	Inject(ctx context.Context, f Fault) (Injected, error)
	// Recover undoes a fault; a fault that is not active is a no-op.
	Recover(ctx context.Context, f Fault) error
	// RecoverAll undoes every active fault.
	RecoverAll(ctx context.Context) error
	// ActiveFaults are the faults in place now, oldest first.
	ActiveFaults() []Injected
}

// Worker is a program run on every member of a stateless service (the
// run's transfer handlers), inside the member's node: a power-off of the
// node kills it with everything else there.
type Worker struct {
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// MemberFlag, when set, is passed with the member index (e.g. --member).
	MemberFlag string `json:"memberFlag,omitempty"`
	// Files are files the worker reads, named by path in Args. A backend
	// whose machines do not see this machine's files (kind's pods) runs
	// the worker from copies of its binary and Files on the member's node,
	// and Args name the copies.
	Files []string `json:"files,omitempty"`
}

// Budget is how long a service may refuse writes after a fault before its
// failover counts as too slow, and how that figure was derived.
type Budget struct {
	Budget     time.Duration
	Derivation string
}

// Progress is one step of bringing a lab up, for the CLI to show.
type Progress struct {
	Service string // "" for the network and installs
	Stage   string // installing, waiting, network, starting, healthy, failed, done
	Detail  string
	Err     error
}
