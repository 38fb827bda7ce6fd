package lab

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Capabilities are the faults a backend can inject: for each action, the
// target kinds (scenarios.TargetSite, ...) it can apply it to. A plan is
// checked against them before a run starts, as etcd's robustness
// failpoints say whether they are Available on a cluster.
type Capabilities struct {
	Actions map[string][]string
	// Observing, when set, says why a run on the backend drives no load
	// (attach mode on a real cluster: the services are the adopter's
	// own): it samples the services through the faults and judges quorum
	// alone.
	Observing string
}

// Supports reports whether the backend can apply action to a target kind.
func (c Capabilities) Supports(action, targetKind string) bool {
	return slices.Contains(c.Actions[action], targetKind)
}

// Check returns an error naming every fault of the plan the backend cannot
// inject, or nil.
func (c Capabilities) Check(backend string, plan []Fault) error {
	var bad []string
	for _, f := range plan {
		tg, err := scenarios.ParseTarget(f.Target)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", f.Key(), err))
			continue
		}
		if !c.Supports(f.Action, tg.Kind) {
			bad = append(bad, fmt.Sprintf("%s %s", f.Action, tg.Kind))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("the %s backend cannot inject: %s", backend, strings.Join(bad, "; "))
}
