package checks

import "time"

// Options tune the checks. Zero fields take the defaults below (see
// DefaultOptions for why each is what it is).
type Options struct {
	// Bucket is the width of the throughput and latency series.
	Bucket time.Duration
	// SettleAfterRecover bounds how long after a heal a finding is still
	// blamed on that fault: rejoining takes longer than failing (Galera
	// state transfer, pg_rewind 1-26 s, Kafka ISR catch-up). The quorum
	// check waits for each service's failover budget instead.
	SettleAfterRecover time.Duration
	// Failover and FailoverAll: the scenario's expect.failover, per
	// service or for all; they override the budgets below.
	Failover    map[string]time.Duration
	FailoverAll time.Duration
	// Budgets: the failover budgets the run recorded (budgets.json); a
	// service missing here takes DefaultBudget of its kind.
	Budgets map[string]Budget
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
	// EffectLatencyFactor: a transfer at least this many times the
	// baseline p99 is slow (see EffectSlowShare).
	EffectLatencyFactor float64
	// EffectSlowShare: the share of a fault window's transfers that must
	// be slow (see EffectLatencyFactor) for the slowdown to count.
	EffectSlowShare float64
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
		SettleAfterRecover:   30 * time.Second,
		RecoveryWindow:       5 * time.Second,
		RecoveryLevel:        0.9,
		MinBaseline:          5 * time.Second,
		LossLookback:         2 * time.Second,
		EffectThroughputDrop: 0.10,
		EffectLatencyFactor:  2,
		EffectSlowShare:      0.05,
		MaxIDs:               20,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Bucket <= 0 {
		o.Bucket = d.Bucket
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
	if o.EffectSlowShare <= 0 {
		o.EffectSlowShare = d.EffectSlowShare
	}
	if o.MaxIDs <= 0 {
		o.MaxIDs = d.MaxIDs
	}
	return o
}

// OptionsJSON records the options a report was made with.
type OptionsJSON struct {
	Bucket             Sec              `json:"bucket"`
	SettleAfterRecover Sec              `json:"settleAfterRecover"`
	RecoveryWindow     Sec              `json:"recoveryWindow"`
	RecoveryLevel      float64          `json:"recoveryLevel"`
	MinBaseline        Sec              `json:"minBaseline"`
	LossLookback       Sec              `json:"lossLookback"`
	InitialPositions   map[string]int64 `json:"initialPositions,omitempty"`
}

func (o Options) json() OptionsJSON {
	return OptionsJSON{
		Bucket: Sec(o.Bucket), SettleAfterRecover: Sec(o.SettleAfterRecover),
		RecoveryWindow: Sec(o.RecoveryWindow), RecoveryLevel: o.RecoveryLevel, MinBaseline: Sec(o.MinBaseline),
		LossLookback: Sec(o.LossLookback), InitialPositions: o.InitialPositions,
	}
}
