package topology

import (
	"cmp"
	"runtime"
	"slices"
	"sync"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Domain is a failure domain: a site, rack, feed or node loses power, or a
// switch or link is cut (section 5).
type Domain struct {
	Path  string
	Fault Fault
}

// Domains lists every failure domain of the topology, sorted by path.
func (t *Topology) Domains() []Domain {
	var ds []Domain
	add := func(action string, tg scenarios.Target) {
		ds = append(ds, Domain{Path: tg.String(), Fault: Fault{Action: action, Target: tg}})
	}
	for _, s := range t.Sites {
		add(scenarios.ActionPowerOff, scenarios.Target{Kind: scenarios.TargetSite, Name: s.Name})
	}
	for _, r := range t.Racks {
		add(scenarios.ActionPowerOff, scenarios.Target{Kind: scenarios.TargetRack, Site: r.Site.Name, Name: r.Name})
	}
	for _, f := range t.Feeds {
		add(scenarios.ActionPowerOff, scenarios.Target{Kind: scenarios.TargetFeed, Name: f.Name})
	}
	for _, sw := range t.Switches {
		add(scenarios.ActionIsolate, scenarios.Target{Kind: scenarios.TargetSwitch, Name: sw.Name})
	}
	for _, n := range t.Nodes {
		add(scenarios.ActionPowerOff, scenarios.Target{Kind: scenarios.TargetNode, Name: n.Name})
	}
	for _, l := range t.Links {
		add(scenarios.ActionIsolate, scenarios.Target{Kind: scenarios.TargetLink, A: l.A.Name, B: l.B.Name})
	}
	slices.SortFunc(ds, func(a, b Domain) int { return cmp.Compare(a.Path, b.Path) })
	return ds
}

// Failure is one judged failure: one domain, or two with depth 2.
type Failure struct {
	// Domains indexes into Analysis.Domains; B is -1 for a single domain.
	A, B int32
	// Judgements[i] is service i's judgement.
	Judgements []Judgement
}

// Worst returns the failure's worst verdict.
func (f *Failure) Worst() Verdict {
	w := OK
	for _, j := range f.Judgements {
		w = max(w, j.Verdict)
	}
	return w
}

// Analysis is the result of judging every failure up to a depth.
type Analysis struct {
	Topology *Topology
	Depth    int
	Domains  []Domain
	// Failures in the spec's order: sorted by their sorted domain lists.
	Failures    []Failure
	Worst       Verdict
	SurvivesAll bool
}

// DomainPaths returns a failure's domain paths, sorted.
func (a *Analysis) DomainPaths(f *Failure) []string {
	if f.B < 0 {
		return []string{a.Domains[f.A].Path}
	}
	return []string{a.Domains[f.A].Path, a.Domains[f.B].Path}
}

// NodesDown returns the names of the nodes a failure leaves without power.
func (a *Analysis) NodesDown(f *Failure) []string {
	st := NewState(a.Topology)
	for _, d := range a.faults(f) {
		_ = st.Apply(d)
	}
	return st.NodesDown()
}

func (a *Analysis) faults(f *Failure) []Fault {
	if f.B < 0 {
		return []Fault{a.Domains[f.A].Fault}
	}
	return []Fault{a.Domains[f.A].Fault, a.Domains[f.B].Fault}
}

// Analyze judges every service under every single failure domain and, with
// depth 2, every unordered pair of distinct domains. Work is split by first
// domain across the machine's cores; each worker keeps one State and applies
// and reverts domains incrementally.
func (t *Topology) Analyze(depth int) *Analysis {
	doms := t.Domains()
	a := &Analysis{Topology: t, Depth: depth, Domains: doms, SurvivesAll: true}
	nd := len(doms)
	// Failures with first domain i start at offset[i]: [i] then [i, j>i].
	offset := make([]int, nd+1)
	for i := range nd {
		n := 1
		if depth >= 2 {
			n += nd - i - 1
		}
		offset[i+1] = offset[i] + n
	}
	total := offset[nd]
	ns := len(t.Services)
	a.Failures = make([]Failure, total)
	backing := make([]Judgement, total*ns)
	for k := range a.Failures {
		a.Failures[k].Judgements = backing[k*ns : (k+1)*ns : (k+1)*ns]
	}

	workers := min(runtime.GOMAXPROCS(0), max(1, nd))
	var wg sync.WaitGroup
	var next int
	var mu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := NewState(t)
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= nd {
					return
				}
				k := offset[i]
				_ = st.Apply(doms[i].Fault)
				st.judgeAll(&a.Failures[k], int32(i), -1)
				k++
				if depth >= 2 {
					for j := i + 1; j < nd; j++ {
						_ = st.Apply(doms[j].Fault)
						st.judgeAll(&a.Failures[k], int32(i), int32(j))
						_ = st.Revert(doms[j].Fault)
						k++
					}
				}
				_ = st.Revert(doms[i].Fault)
			}
		}()
	}
	wg.Wait()
	for k := range a.Failures {
		for _, j := range a.Failures[k].Judgements {
			a.Worst = max(a.Worst, j.Verdict)
		}
	}
	a.SurvivesAll = a.Worst <= Degraded
	return a
}

func (st *State) judgeAll(f *Failure, a, b int32) {
	f.A, f.B = a, b
	for i, sv := range st.t.Services {
		f.Judgements[i] = st.Judge(sv)
	}
}
