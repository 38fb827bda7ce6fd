package checks

import "time"

// Options tune the checks. Zero fields take the defaults below (see
// DefaultOptions for why each is what it is).
type Options struct {
	// Bucket is the width of the throughput and latency series.
	Bucket time.Duration
	// SettleAfterInject: samples this soon after a fault is injected are
	// not compared with analyze's prediction, because the engines need
	// time to notice (measured on the lab: Galera evicts in ~4 s, Sentinel
	// fails over in ~3.4 s, etcd/ZooKeeper elect in ≤2 s, Patroni needs
	// 12-16 s with ttl 10).
	SettleAfterInject time.Duration
	// SettleAfterRecover: likewise after a fault heals; rejoining takes
	// longer than failing (Galera state transfer, pg_rewind 1-26 s, Kafka
	// ISR catch-up). It also bounds how long after a heal a finding is
	// still blamed on that fault.
	SettleAfterRecover time.Duration
	// RecoveryWindow: throughput counts as recovered from the start of the
	// first window this long whose mean reaches RecoveryLevel of baseline.
	RecoveryWindow time.Duration
	RecoveryLevel  float64
	// MinBaseline: a baseline shorter than this is not trusted (throughput
	// and recovery report UNKNOWN).
	MinBaseline time.Duration
	// LossLookback: an acknowledged async-replicated write this long before
	// a fault that makes loss possible may still be lost (replication lag).
	LossLookback time.Duration
	// EffectThroughputDrop: a fault whose window's throughput falls by at
	// least this fraction of baseline had an observable effect.
	EffectThroughputDrop float64
	// EffectLatencyFactor: likewise for a p99 at least this many times the
	// baseline p99.
	EffectLatencyFactor float64
	// InitialPositions: per currency, the sum of the participants'
	// positions before the run (funding). Conservation checks that
	// Σ positions = initial + reservations still pending.
	InitialPositions map[string]int64
	// MaxIDs caps the ids listed in one finding.
	MaxIDs int
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		Bucket:               time.Second,
		SettleAfterInject:    15 * time.Second,
		SettleAfterRecover:   30 * time.Second,
		RecoveryWindow:       5 * time.Second,
		RecoveryLevel:        0.9,
		MinBaseline:          5 * time.Second,
		LossLookback:         2 * time.Second,
		EffectThroughputDrop: 0.10,
		EffectLatencyFactor:  2,
		MaxIDs:               20,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Bucket <= 0 {
		o.Bucket = d.Bucket
	}
	if o.SettleAfterInject <= 0 {
		o.SettleAfterInject = d.SettleAfterInject
	}
	if o.SettleAfterRecover <= 0 {
		o.SettleAfterRecover = d.SettleAfterRecover
	}
	if o.RecoveryWindow <= 0 {
		o.RecoveryWindow = d.RecoveryWindow
	}
	if o.RecoveryLevel <= 0 {
		o.RecoveryLevel = d.RecoveryLevel
	}
	if o.MinBaseline <= 0 {
		o.MinBaseline = d.MinBaseline
	}
	if o.LossLookback <= 0 {
		o.LossLookback = d.LossLookback
	}
	if o.EffectThroughputDrop <= 0 {
		o.EffectThroughputDrop = d.EffectThroughputDrop
	}
	if o.EffectLatencyFactor <= 0 {
		o.EffectLatencyFactor = d.EffectLatencyFactor
	}
	if o.MaxIDs <= 0 {
		o.MaxIDs = d.MaxIDs
	}
	return o
}

// OptionsJSON records the options a report was made with.
type OptionsJSON struct {
	Bucket             Sec              `json:"bucket"`
	SettleAfterInject  Sec              `json:"settleAfterInject"`
	SettleAfterRecover Sec              `json:"settleAfterRecover"`
	RecoveryWindow     Sec              `json:"recoveryWindow"`
	RecoveryLevel      float64          `json:"recoveryLevel"`
	MinBaseline        Sec              `json:"minBaseline"`
	LossLookback       Sec              `json:"lossLookback"`
	InitialPositions   map[string]int64 `json:"initialPositions,omitempty"`
}

func (o Options) json() OptionsJSON {
	return OptionsJSON{
		Bucket: Sec(o.Bucket), SettleAfterInject: Sec(o.SettleAfterInject), SettleAfterRecover: Sec(o.SettleAfterRecover),
		RecoveryWindow: Sec(o.RecoveryWindow), RecoveryLevel: o.RecoveryLevel, MinBaseline: Sec(o.MinBaseline),
		LossLookback: Sec(o.LossLookback), InitialPositions: o.InitialPositions,
	}
}
