package local

import (
	"context"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// Machines are a lab's nodes when they are not the local lab's own hosts
// (namespaces and cgroups on this machine): another backend's machines —
// kind's node containers — that the lab network adopts as its hosts. The
// lab keeps doing the rest as for the local lab: the services' members
// (started through the backend's Launcher), the network's faults, state,
// status and probes. nil Machines is the local lab.
type Machines interface {
	// Backend names the backend ("kind"), for messages.
	Backend() string
	// Up builds the scenario's lab network under stateDir with every host
	// adopted and brings the machines up on it (or repairs those up), and
	// returns the network.
	Up(ctx context.Context, sc *scenarios.Scenario) (*netlab.Lab, error)
	// Open attaches to the network and machines of a lab that is up.
	Open(ctx context.Context, sc *scenarios.Scenario) (*netlab.Lab, error)
	// EngineFor names the engine the backend stands for a service with
	// itself ("" leaves it to the lab): kind's own etcd and API servers
	// are the etcd service on its control-plane nodes.
	EngineFor(topo *topology.Topology, sv *topology.Service) string
	// Engine returns an engine EngineFor named.
	Engine(name string) (Engine, error)
	// Launcher starts a service's member processes on its machines (a
	// stateless service's: its workers).
	Launcher(ctx context.Context, service, engine string) (engines.Launcher, error)
	// PowerOff cuts a node's power: every process of the machine dies at
	// once. It is called before the network marks the node off.
	PowerOff(ctx context.Context, node string) error
	// PowerOn starts the machine again and returns once it is on the lab
	// network (re-adopted), so that its members can be started.
	PowerOn(ctx context.Context, node string) error
	// Down removes the machines and the lab network, also after a crash.
	Down(ctx context.Context) error
}

// Wiper is Machines whose nodes keep data of their own on their disks
// (kind: a control-plane node's etcd), which destroy loses with the
// members' data. Wipe is called with the node off.
type Wiper interface {
	Wipe(ctx context.Context, node string) error
}

// Engine is what the lab needs of every engine (see the engine packages);
// a backend's own engines implement it too.
type Engine = engine

// ProcessLister is a Launcher that can name a member's processes (the
// local lab reads its process records instead).
type ProcessLister interface {
	Processes(ctx context.Context, m engines.Member) ([]string, error)
}

// machines returns the lab's Machines, nil for the local lab's hosts.
func (o Options) machines(dir string) Machines {
	if o.Machines == nil {
		return nil
	}
	return o.Machines(dir)
}

// EngineOf names the engine that stands for a service in the local lab.
func EngineOf(sv *scenarios.Service) string { return engineFor(sv) }

// budgeter is an engine that derives its own failover budget.
type budgeter interface {
	FailoverBudget() engines.Budget
}
