package engines

import (
	"fmt"
	"time"

	"github.com/chaosloop/chaosloop/lab"
)

// Budget is an engine's failover budget: its worst-case detection plus
// election, from the settings the lab gives it, plus the margin.
type Budget = lab.Budget

// MinMargin and MarginFactor: a budget is raw + max(raw×MarginFactor,
// MinMargin). Proportional for the slow engines (Patroni, Galera,
// Sentinel), whose timeouts stretch under load; at least 5 s for the fast
// ones, whose raw figure is within a few samples (2/s) and a busy 2-core
// lab's scheduling delays.
const (
	MinMargin    = 5 * time.Second
	MarginFactor = 0.5
)

// WithMargin adds the margin to raw, with the derivation saying so.
func WithMargin(raw time.Duration, why string) Budget {
	m := time.Duration(float64(raw) * MarginFactor)
	margin := "+ 50%"
	if m < MinMargin {
		m, margin = MinMargin, "+ 5 s margin"
	}
	return Budget{Budget: raw + m, Derivation: fmt.Sprintf("%s; %s", why, margin)}
}
