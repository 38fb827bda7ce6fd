package checks

import (
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/reports/evidence"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// predictor gives analyze's verdicts (topology.State.Judge) for a set of
// active faults, cached per set.
type predictor struct {
	t     *topology.Topology
	cache map[string][]topology.Judgement
}

func newPredictor(t *topology.Topology) *predictor {
	return &predictor{t: t, cache: map[string][]topology.Judgement{}}
}

// at returns one judgement per service (by topology index). Power and
// network faults go through topology.State as analyze applies them. A kill
// or pause of a service member is judged, for that service only, as if the
// member's node had lost power: the member is gone for its peers, while
// other services on the node are untouched. A member chosen at run time
// ("leader" or none) is taken to be member 0, the initial primary/leader.
// Latency changes no verdict.
func (p *predictor) at(active []*evidence.Fault) []topology.Judgement {
	var key strings.Builder
	for _, f := range active {
		key.WriteString(f.Name())
		key.WriteByte('\n')
	}
	if js, ok := p.cache[key.String()]; ok {
		return js
	}
	st := topology.NewState(p.t)
	memberOff := map[string][]*topology.Node{}
	for _, f := range active {
		if f.ModelErr != nil {
			continue
		}
		switch f.Action {
		case scenarios.ActionKill, scenarios.ActionPause:
			sv := p.t.Service(f.Model.Target.Name)
			if sv == nil {
				continue
			}
			m, err := strconv.Atoi(f.Model.Target.Member)
			if err != nil || m < 0 || m >= len(sv.Members) {
				m = 0
			}
			memberOff[sv.Name] = append(memberOff[sv.Name], sv.Members[m])
		default:
			// An unknown target cannot be judged; the scenario was
			// validated, so this only happens for unplanned faults.
			_ = st.Apply(f.Model)
		}
	}
	js := make([]topology.Judgement, len(p.t.Services))
	for _, sv := range p.t.Services {
		var extra []topology.Fault
		for _, n := range memberOff[sv.Name] {
			extra = append(extra, topology.Fault{Action: scenarios.ActionPowerOff, Target: scenarios.Target{Kind: scenarios.TargetNode, Name: n.Name}})
		}
		for _, f := range extra {
			_ = st.Apply(f)
		}
		js[sv.Index] = st.Judge(sv)
		for _, f := range extra {
			_ = st.Revert(f)
		}
	}
	p.cache[key.String()] = js
	return js
}

// atTime predicts for the faults active at t.
func (r *run) predictAt(t time.Duration) []topology.Judgement {
	return r.pred.at(r.ix.Active(t))
}
