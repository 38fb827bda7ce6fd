package topology

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strconv"

	"github.com/chaosloop/chaosloop/scenarios"
)

// The analyze contract's JSON shapes (spec section 5). These types document
// the format and decode it (tests, other tools); WriteJSON streams the same
// shape without building them, since depth-2 output can be very large.
type (
	AnalysisJSON struct {
		Scenario string        `json:"scenario"`
		Depth    int           `json:"depth"`
		Failures []FailureJSON `json:"failures"`
		Summary  SummaryJSON   `json:"summary"`
	}
	FailureJSON struct {
		Domains   []string      `json:"domains"`
		NodesDown []string      `json:"nodesDown"`
		Services  []ServiceJSON `json:"services"`
	}
	ServiceJSON struct {
		Service                  string  `json:"service"`
		Verdict                  Verdict `json:"verdict"`
		MembersUp                int     `json:"membersUp"`
		Members                  int     `json:"members"`
		AcknowledgedLossPossible bool    `json:"acknowledgedLossPossible"`
	}
	SummaryJSON struct {
		Failures    int     `json:"failures"`
		Worst       Verdict `json:"worst"`
		SurvivesAll bool    `json:"survivesAll"`
	}
)

// WriteJSON judges every failure and streams each as it is judged, in the
// contract's JSON object: memory does not grow with the number of failures.
// The summary comes last, so it is known by then.
func (a *Analysis) WriteJSON(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	t := a.Topology
	svcNames := make([][]byte, len(t.Services))
	for i, sv := range t.Services {
		svcNames[i], _ = json.Marshal(sv.Name)
	}
	domNames := make([][]byte, len(a.Domains))
	for i, d := range a.Domains {
		domNames[i], _ = json.Marshal(d.Path)
	}
	nodeNames := make([][]byte, len(t.Nodes))
	for i, n := range t.Nodes {
		nodeNames[i], _ = json.Marshal(n.Name)
	}
	nd := newNodesDown(a)

	buf := make([]byte, 0, 4096)
	buf = append(buf, `{"scenario":`...)
	name, _ := json.Marshal(t.Name)
	buf = append(buf, name...)
	buf = append(buf, `,"depth":`...)
	buf = strconv.AppendInt(buf, int64(a.Depth), 10)
	buf = append(buf, `,"failures":[`...)
	first := true
	err := a.Each(ctx, func(f *Failure) error {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, "\n"+`{"domains":[`...)
		buf = append(buf, domNames[f.A]...)
		if f.B >= 0 {
			buf = append(buf, ',')
			buf = append(buf, domNames[f.B]...)
		}
		buf = append(buf, `],"nodesDown":[`...)
		for i, n := range nd.of(f) {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, nodeNames[n]...)
		}
		buf = append(buf, `],"services":[`...)
		for i, j := range f.Judgements {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"service":`...)
			buf = append(buf, svcNames[i]...)
			buf = append(buf, `,"verdict":"`...)
			buf = append(buf, j.Verdict.String()...)
			buf = append(buf, `","membersUp":`...)
			buf = strconv.AppendInt(buf, int64(j.MembersUp), 10)
			buf = append(buf, `,"members":`...)
			buf = strconv.AppendInt(buf, int64(len(t.Services[i].Members)), 10)
			buf = append(buf, `,"acknowledgedLossPossible":`...)
			buf = strconv.AppendBool(buf, j.LossPossible)
			buf = append(buf, '}')
		}
		buf = append(buf, "]}"...)
		if len(buf) > 1<<15 {
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	buf = append(buf, "\n"+`],"summary":{"failures":`...)
	buf = strconv.AppendInt(buf, int64(a.Count), 10)
	buf = append(buf, `,"worst":"`...)
	buf = append(buf, a.Worst.String()...)
	buf = append(buf, `","survivesAll":`...)
	buf = strconv.AppendBool(buf, a.SurvivesAll)
	buf = append(buf, "}}\n"...)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	return bw.Flush()
}

// nodesDown computes a failure's unpowered nodes (sorted by name) from the
// racks its domains touch, instead of scanning every node.
type nodesDown struct {
	a      *Analysis
	st     *State
	racks  [][]int32 // per domain: racks whose power it touches
	rank   []int32   // node index -> position in name order
	seen   []bool    // per rack scratch
	result []int32
}

func newNodesDown(a *Analysis) *nodesDown {
	t := a.Topology
	nd := &nodesDown{a: a, st: NewState(t), racks: make([][]int32, len(a.Domains)), seen: make([]bool, len(t.Racks))}
	for i, d := range a.Domains {
		tg := d.Fault.Target
		var rs []int32
		switch {
		case d.Fault.Action == scenarios.ActionIsolate:
		case tg.Kind == scenarios.TargetSite:
			for _, r := range t.Site(tg.Name).Racks {
				rs = append(rs, int32(r.Index))
			}
		case tg.Kind == scenarios.TargetRack:
			rs = append(rs, int32(t.Rack(tg.Site, tg.Name).Index))
		case tg.Kind == scenarios.TargetFeed:
			for _, r := range t.Feed(tg.Name).Racks {
				rs = append(rs, int32(r.Index))
			}
		case tg.Kind == scenarios.TargetNode:
			rs = append(rs, int32(t.Node(tg.Name).Rack.Index))
		}
		nd.racks[i] = rs
	}
	order := make([]int32, len(t.Nodes))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int {
		if t.Nodes[x].Name < t.Nodes[y].Name {
			return -1
		}
		if t.Nodes[x].Name > t.Nodes[y].Name {
			return 1
		}
		return 0
	})
	nd.rank = make([]int32, len(t.Nodes))
	for r, n := range order {
		nd.rank[n] = int32(r)
	}
	return nd
}

// of returns node indexes of the failure's unpowered nodes in name order.
func (nd *nodesDown) of(f *Failure) []int32 {
	t := nd.a.Topology
	faults := nd.a.faults(f)
	for _, x := range faults {
		_ = nd.st.Apply(x)
	}
	nd.result = nd.result[:0]
	doms := []int32{f.A}
	if f.B >= 0 {
		doms = append(doms, f.B)
	}
	for _, d := range doms {
		for _, r := range nd.racks[d] {
			if nd.seen[r] {
				continue
			}
			nd.seen[r] = true
			for _, n := range t.Racks[r].Nodes {
				if !nd.st.Up(n) {
					nd.result = append(nd.result, int32(n.Index))
				}
			}
		}
	}
	for _, d := range doms {
		for _, r := range nd.racks[d] {
			nd.seen[r] = false
		}
	}
	for _, x := range faults {
		_ = nd.st.Revert(x)
	}
	slices.SortFunc(nd.result, func(x, y int32) int { return int(nd.rank[x] - nd.rank[y]) })
	return nd.result
}
