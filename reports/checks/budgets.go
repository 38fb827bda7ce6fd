package checks

import (
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Budget is how long a service may refuse writes after a fault before
// its failover counts as too slow, and where that figure comes from.
type Budget struct {
	Budget     Sec    `json:"budget"`
	Derivation string `json:"derivation"`
	// Source: SourceEngine, SourceExpect or SourceTable.
	Source string `json:"source"`
}

// Budget sources.
const (
	// SourceEngine: the lab's engine settings, recorded by the runner.
	SourceEngine = "engine default"
	// SourceExpect: the scenario's expect.failover.
	SourceExpect = "expect.failover"
	// SourceTable: DefaultBudgets, for a run directory without budgets.json.
	SourceTable = "default table"
)

// DefaultBudget returns the failover budget for a service kind, for run
// directories saved before the runner recorded budgets (budgets.json).
// The figures repeat what clusters/local's engines derive from their own
// settings (reports must not import the lab); a test in clusters/local
// keeps the two equal. Margin: max(+50%, +5 s) over the engine's
// worst-case detection plus election — proportional for the slow
// engines, and at least 5 s for the fast ones, whose figure is within a
// few samples (2/s) and a busy 2-core lab's scheduling delays.
func DefaultBudget(kind string) Budget {
	b := func(d time.Duration, why string) Budget { return Budget{Sec(d), why, SourceTable} }
	switch kind {
	case scenarios.KindEtcd, scenarios.KindRaft:
		return b(15*time.Second, "etcd election timeout 5s, randomised up to 10s; + 50%")
	case scenarios.KindZookeeper:
		return b(15*time.Second, "tickTime 2s × syncLimit 5 = 10s; + 50%")
	case scenarios.KindMySQL:
		return b(22500*time.Millisecond, "Galera evs.inactive_timeout 15s (evs.suspect_timeout 5s); + 50%")
	case scenarios.KindRedis:
		return b(18*time.Second, "Sentinel down-after-milliseconds 2s + failover-timeout 10s = 12s; + 50%")
	case scenarios.KindKafka:
		return b(12*time.Second, "KRaft broker.session.timeout 4s + controller.quorum.fetch.timeout 2s + election.timeout 1s = 7s; + 5 s margin")
	case scenarios.KindMongoDB:
		return b(22500*time.Millisecond, "Patroni ttl 10s + loop_wait 2s + retry_timeout 3s = 15s; + 50%")
	}
	return b(5*time.Second, "no election: members are up with their nodes; + 5 s margin")
}

// ScenarioFailover returns expect.failover for a service, when the
// scenario's Expect carries it.
func ScenarioFailover(sc *scenarios.Scenario, service string) (time.Duration, bool) {
	if sc == nil {
		return 0, false
	}
	return sc.Expect.FailoverFor(service)
}

// budgetFor resolves a service's budget: expect.failover (Options, or the
// scenario), then what the runner recorded, then the table.
func (r *run) budgetFor(service, kind string) Budget {
	if d, ok := r.o.Failover[service]; ok {
		return Budget{Sec(d), "set for " + service, SourceExpect}
	}
	if r.o.FailoverAll > 0 {
		return Budget{Sec(r.o.FailoverAll), "set for every service", SourceExpect}
	}
	if d, ok := ScenarioFailover(r.sc, service); ok {
		return Budget{Sec(d), "expect.failover", SourceExpect}
	}
	if b, ok := r.o.Budgets[service]; ok {
		return b
	}
	return DefaultBudget(kind)
}

// budgets resolves every service's budget once.
func (r *run) resolveBudgets() map[string]Budget {
	out := map[string]Budget{}
	for _, sv := range r.t.Services {
		out[sv.Name] = r.budgetFor(sv.Name, sv.Kind)
	}
	return out
}
