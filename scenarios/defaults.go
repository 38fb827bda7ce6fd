package scenarios

import (
	"encoding/json"
	"time"
)

// Defaults from the spec.
const (
	DefaultReplicas        = 3
	DefaultMinInSync       = 2
	DefaultPartitions      = 12
	DefaultMaxRF           = 3
	DefaultLinkLatency     = time.Millisecond
	DefaultRate            = 200
	DefaultLoadDuration    = 3 * time.Minute
	DefaultWarmup          = 20 * time.Second
	DefaultParticipants    = 8
	DefaultExpectQuorum    = "held"
	DefaultExpectThrougput = 0.8
	DefaultExpectRecovery  = 30 * time.Second
)

// Clone returns a deep copy that shares the (read-only) position table.
func (s *Scenario) Clone() *Scenario {
	b, err := json.Marshal(s)
	if err != nil {
		panic("scenarios: clone: " + err.Error())
	}
	c := &Scenario{}
	if err := json.Unmarshal(b, c); err != nil {
		panic("scenarios: clone: " + err.Error())
	}
	c.File, c.pos, c.failed = s.File, s.pos, s.failed
	return c
}

// WithDefaults returns a copy of s with every omitted optional field set to
// its default. s itself is not changed. An omitted links list stays omitted:
// it means a full mesh, which the topology builds.
func (s *Scenario) WithDefaults() *Scenario {
	c := s.Clone()
	for i := range c.Links {
		if c.Links[i].Latency == nil {
			c.Links[i].Latency = &Duration{DefaultLinkLatency}
		}
	}
	for i := range c.Services {
		sv := &c.Services[i]
		if sv.Replicas == nil {
			n := DefaultReplicas
			if len(sv.Placement) > 0 {
				n = len(sv.Placement)
			}
			sv.Replicas = &n
		}
		if sv.Spread == "" {
			sv.Spread = SpreadRack
		}
		if sv.Kind == KindMySQL && sv.Replication == "" {
			sv.Replication = ReplicationGroup
		}
		if sv.Kind == KindKafka {
			if sv.ReplicationFactor == nil {
				rf := min(DefaultMaxRF, *sv.Replicas)
				sv.ReplicationFactor = &rf
			}
			if sv.MinInSync == nil {
				m := DefaultMinInSync
				sv.MinInSync = &m
			}
			if sv.Partitions == nil {
				p := DefaultPartitions
				sv.Partitions = &p
			}
		}
	}
	if l := c.Load; l != nil {
		if l.Rate == nil {
			r := float64(DefaultRate)
			l.Rate = &r
		}
		if l.Duration == nil {
			l.Duration = &Duration{DefaultLoadDuration}
		}
		if l.Warmup == nil {
			l.Warmup = &Duration{DefaultWarmup}
		}
		if l.Participants == nil {
			p := DefaultParticipants
			l.Participants = &p
		}
	}
	if c.Expect == nil {
		c.Expect = &Expect{}
	}
	e := c.Expect
	if e.Quorum == "" {
		e.Quorum = DefaultExpectQuorum
	}
	if e.AcknowledgedLoss == nil {
		z := 0
		e.AcknowledgedLoss = &z
	}
	if e.Throughput == nil {
		t := DefaultExpectThrougput
		e.Throughput = &t
	}
	if e.Recovery == nil {
		e.Recovery = &Duration{DefaultExpectRecovery}
	}
	return c
}

// ReplicaCount returns replicas, or the default when unset.
func (sv *Service) ReplicaCount() int {
	if sv.Replicas != nil {
		return *sv.Replicas
	}
	if len(sv.Placement) > 0 {
		return len(sv.Placement)
	}
	return DefaultReplicas
}

// IsQuorum reports whether the service needs a strict majority to write.
func (sv *Service) IsQuorum() bool {
	switch sv.Kind {
	case KindEtcd, KindZookeeper, KindRaft, KindMongoDB:
		return true
	case KindMySQL:
		return sv.Replication != ReplicationAsync
	}
	return false
}
