package local

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/scenarios"
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
			for _, g := range portGroups[ss.Engine] {
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
	return s
}

// kafkaOptions derives a kafka service's options from the scenario:
// broker.rack from each member's rack, the service's replication settings,
// the pipeline's topics, and ZooKeeper mode when it has a controller.
func (l *Lab) kafkaOptions(ss *serviceState) (kafka.Options, error) {
	sv := l.topo.Service(ss.Name)
	if sv == nil {
		return kafka.Options{}, fmt.Errorf("no service %s", ss.Name)
	}
	o := kafka.Options{ReplicationFactor: sv.ReplicationFactor, MinInSync: sv.MinInSync, Partitions: len(sv.Partitions), Topics: Topics, Assignment: sv.Partitions}
	for _, m := range sv.Members {
		o.Racks = append(o.Racks, m.Rack.Site.Name+"-"+m.Rack.Name)
	}
	if ss.Controller != "" {
		zk, err := l.service(ss.Controller)
		if err != nil {
			return o, err
		}
		eps := l.eng.mustEndpoints(zk)
		o.ZooKeeper = strings.Join(eps, ",") + "/kafka-" + ss.Name
	}
	return o, nil
}

// assignHosts fills each member's namespace, address and cgroup from the
// network, and the dialers that reach them.
func (l *Lab) assignHosts() error {
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
	return nil
}
