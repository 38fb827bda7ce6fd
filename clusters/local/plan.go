package local

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/netlab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// planServices decides each service's engine and members (without hosts).
func (l *Lab) planServices() error {
	if len(l.st.Services) > 0 {
		return nil
	}
	zks := []string{}
	for _, sv := range l.topo.Services {
		if sv.Kind == scenarios.KindZookeeper {
			zks = append(zks, sv.Name)
		}
	}
	used := map[string]string{} // node/engine -> service, to refuse port clashes
	for _, sv := range l.topo.Services {
		ss := &serviceState{Name: sv.Name, Kind: sv.Kind, Engine: engineFor(sv.Spec)}
		if l.mach != nil {
			if name := l.mach.EngineFor(l.topo, sv); name != "" {
				ss.Engine = name
			}
		}
		if sv.Kind == scenarios.KindKafka {
			ss.Controller = sv.Spec.Controller
			if ss.Controller == "" && len(zks) == 1 {
				// The seed's v15 layout: Kafka uses the one ZooKeeper ensemble.
				ss.Controller = zks[0]
			}
		}
		ss.Cluster.Service = sv.Name
		ss.Cluster.StateDir = l.dir
		for i, n := range sv.Members {
			for _, g := range l.portGroups(ss.Engine) {
				key := n.Name + "/" + g
				if other, clash := used[key]; clash {
					return fmt.Errorf("services %s and %s both need the %s ports on node %s; the local lab gives each host one address, so they would clash", other, sv.Name, g, n.Name)
				}
				used[key] = sv.Name
			}
			ss.Cluster.Members = append(ss.Cluster.Members, engines.Member{
				Index:   i,
				Name:    fmt.Sprintf("%s-%d", sv.Name, i),
				Node:    n.Name,
				DataDir: filepath.Join(l.dir, "data", n.Name, sv.Name),
				LogDir:  filepath.Join(l.dir, "logs", n.Name, sv.Name),
			})
		}
		l.st.Services = append(l.st.Services, ss)
	}
	return nil
}

func (l *Lab) newEngines() *engineSet {
	s := newEngineSet(l.opts.Log, l.opts.Cache)
	s.kafkaOptions = l.kafkaOptions
	if l.mach != nil {
		s.backend = l.mach.Engine
	}
	return s
}

// portGroups are the port groups of an engine, a backend's own included.
func (l *Lab) portGroups(engine string) []string {
	if g, ok := portGroups[engine]; ok || l.mach == nil {
		return g
	}
	if e, err := l.mach.Engine(engine); err == nil {
		if pg, ok := e.(interface{ PortGroups() []string }); ok {
			return pg.PortGroups()
		}
	}
	return nil
}

// upNetwork builds the lab network: the local lab's hosts, or the
// backend's machines adopted as hosts.
func (l *Lab) upNetwork(ctx context.Context, sc *scenarios.Scenario) (*netlab.Lab, error) {
	if l.mach != nil {
		return l.mach.Up(ctx, sc)
	}
	return netlab.Up(ctx, l.opts.Log, sc, l.dir)
}

// attachLaunchers gives every service the backend's launcher of its
// members' processes, a stateless service's workers included (none on
// the local lab: processes on its hosts).
func (l *Lab) attachLaunchers(ctx context.Context) error {
	if l.mach == nil {
		return nil
	}
	for _, ss := range l.st.Services {
		ln, err := l.mach.Launcher(ctx, ss.Name, ss.Engine)
		if err != nil {
			return fmt.Errorf("service %s: %w", ss.Name, err)
		}
		ss.Cluster.Launcher = ln
	}
	return nil
}

// kafkaOptions derives a kafka service's options from the scenario
// (KafkaOptions), in ZooKeeper mode when it has a controller.
func (l *Lab) kafkaOptions(ss *serviceState) (kafka.Options, error) {
	sv := l.topo.Service(ss.Name)
	if sv == nil {
		return kafka.Options{}, fmt.Errorf("no service %s", ss.Name)
	}
	o := KafkaOptions(sv)
	if ss.Controller != "" {
		zk, err := l.service(ss.Controller)
		if err != nil {
			return o, err
		}
		o.ZooKeeper = ZooKeeperConnect(l.eng.mustEndpoints(zk), ss.Name)
	}
	return o, nil
}

// ZooKeeperConnect is the connect string of the kafka service named kafka
// on the ZooKeeper ensemble whose client endpoints are zk: a chroot of its
// own, so that several Kafka clusters can share the ensemble.
func ZooKeeperConnect(zk []string, kafka string) string {
	return strings.Join(zk, ",") + "/kafka-" + kafka
}

// KafkaOptions are a kafka service's options in KRaft mode, derived from
// the scenario: broker.rack from each member's rack, the service's
// replication settings and partition assignment, the pipeline's topics.
func KafkaOptions(sv *topology.Service) kafka.Options {
	o := kafka.Options{ReplicationFactor: sv.ReplicationFactor, MinInSync: sv.MinInSync, Partitions: len(sv.Partitions), Topics: Topics, Assignment: sv.Partitions}
	for _, m := range sv.Members {
		o.Racks = append(o.Racks, m.Rack.Site.Name+"-"+m.Rack.Name)
	}
	return o
}

// assignHosts fills each member's namespace, address and cgroup from the
// network, and the launchers and dialers that reach them.
func (l *Lab) assignHosts(ctx context.Context) error {
	for _, ss := range l.st.Services {
		for i := range ss.Cluster.Members {
			m := &ss.Cluster.Members[i]
			h, ok := l.net.Host(m.Node)
			if !ok {
				return fmt.Errorf("lab network has no host for node %s", m.Node)
			}
			m.NetNS, m.Addr, m.Cgroup = h.NetNS, h.Addr, h.Cgroup
		}
	}
	l.attachDialers()
	return l.attachLaunchers(ctx)
}
