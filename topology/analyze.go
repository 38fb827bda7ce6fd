package topology

import (
	"cmp"
	"context"
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
	eff   effect // Fault resolved
}

// Domains lists every failure domain of the topology, sorted by path.
func (t *Topology) Domains() []Domain {
	var ds []Domain
	add := func(action string, tg scenarios.Target) {
		f := Fault{Action: action, Target: tg}
		eff, _ := t.resolve(f) // a domain of t: resolves
		ds = append(ds, Domain{Path: tg.String(), Fault: f, eff: eff})
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

// Analysis judges every failure up to a depth. Each streams the failures in
// the spec's order with memory independent of their number; Analyze collects
// them all (tests, small topologies).
type Analysis struct {
	Topology *Topology
	Depth    int
	Domains  []Domain
	// Failures in the spec's order (sorted by their sorted domain lists):
	// filled by Analyze only.
	Failures []Failure

	// affects[d] lists the services domain d can change, unless global[d]:
	// it may change any (see reach).
	affects [][]int32
	global  []bool

	// Set by a completed Each (or Analyze).
	Count       int     // failures judged
	ByWorst     [4]int  // failures by their worst verdict
	Worst       Verdict // the worst verdict of any service under any failure
	SurvivesAll bool    // no failure makes any service read-only or down
}

// NewAnalysis prepares the analysis of every failure domain and, with depth
// 2, every unordered pair of distinct domains.
func (t *Topology) NewAnalysis(depth int) *Analysis {
	a := &Analysis{Topology: t, Depth: depth, Domains: t.Domains()}
	a.reach()
	return a
}

// reach lists, per domain, the services whose judgement it can change. A
// node, rack, feed or switch changes only the power and reachability of the
// nodes of the racks it touches, and a service is judged from its members'
// nodes (and kafka's from its controller's), so a failure of such domains
// leaves every other service as it is without failures: most pairs of a
// large topology's domains touch no service at all. A site's power-off (its
// WAN router) or a link's cut change the WAN components: any service.
func (a *Analysis) reach() {
	t := a.Topology
	byNode := make([][]int32, len(t.Nodes))
	byRack := make([][]int32, len(t.Racks))
	add := func(xs []int32, s int32) []int32 {
		if len(xs) > 0 && xs[len(xs)-1] == s {
			return xs
		}
		return append(xs, s)
	}
	for _, sv := range t.Services {
		s := int32(sv.Index)
		for _, n := range append(slices.Clone(sv.Members), sv.Controller...) {
			byNode[n.Index] = add(byNode[n.Index], s)
			byRack[n.Rack.Index] = add(byRack[n.Rack.Index], s)
		}
	}
	racks := func(rs []*Rack) []int32 {
		var out []int32
		for _, r := range rs {
			out = append(out, byRack[r.Index]...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	a.affects = make([][]int32, len(a.Domains))
	a.global = make([]bool, len(a.Domains))
	for i, d := range a.Domains {
		switch at := d.eff.at; d.eff.what {
		case nodePowerOff:
			a.affects[i] = byNode[at]
		case rackPowerOff:
			a.affects[i] = byRack[at]
		case feedOff:
			a.affects[i] = racks(t.Feeds[at].Racks)
		case switchIsolated:
			a.affects[i] = racks(t.Switches[at].Racks)
		default:
			a.global[i] = true
		}
	}
}

// Total returns the number of failures the analysis judges.
func (a *Analysis) Total() int {
	nd := len(a.Domains)
	if a.Depth >= 2 {
		return nd + nd*(nd-1)/2
	}
	return nd
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

// Analyze judges every failure up to depth and keeps them all in
// a.Failures: memory grows with the number of failures (the square of the
// domains at depth 2). Each streams them instead.
func (t *Topology) Analyze(depth int) *Analysis {
	a := t.NewAnalysis(depth)
	ns := len(t.Services)
	a.Failures = make([]Failure, 0, a.Total())
	backing := make([]Judgement, a.Total()*ns)
	// Each cannot fail: the context is never cancelled and visit returns nil.
	_ = a.Each(context.Background(), func(f *Failure) error {
		k := len(a.Failures)
		js := backing[k*ns : (k+1)*ns : (k+1)*ns]
		copy(js, f.Judgements)
		a.Failures = append(a.Failures, Failure{A: f.A, B: f.B, Judgements: js})
		return nil
	})
	return a
}

// chunkSize is at most how many consecutive failures a worker judges at a
// time (fewer for a small analysis, so that every worker gets some);
// chunksPerWorker bounds how many chunks are in flight. Memory is at most
// chunkSize × chunksPerWorker × workers × services judgements, whatever the
// topology's size.
const (
	chunkSize       = 4096
	chunksPerWorker = 2
)

// pos is a failure's place in the spec's order: domain i alone (j < 0), or
// the pair i, j with j > i. At depth 2 the order is [i], [i j] for j > i,
// then [i+1]: sorted by the sorted domain lists, as domains are sorted.
type pos struct{ i, j int }

// advance returns the position n failures after p.
func (a *Analysis) advance(p pos, n int) pos {
	nd := len(a.Domains)
	for n > 0 {
		left := 1 // failures left in row p.i, p included
		if a.Depth >= 2 {
			left = nd - max(p.i, p.j)
		}
		if n < left {
			return pos{p.i, max(p.i, p.j) + n}
		}
		n -= left
		p = pos{p.i + 1, -1}
	}
	return p
}

type chunk struct {
	start pos
	fs    []Failure // the chunk's failures, fs[:n] in use
	n     int
	ready chan struct{} // a worker has judged the chunk (or given up)
}

// Each judges every failure and calls visit for each in the spec's order,
// from the calling goroutine. The failure and its Judgements are reused
// once visit returns. Workers (one per core, each keeping one State and
// applying and reverting domains incrementally) judge fixed-size chunks of
// consecutive failures while visit consumes earlier ones; at most a few
// chunks per worker exist at once, so memory does not grow with the number
// of failures. Each returns visit's first error, or ctx's error when ctx is
// done first (workers check it every few hundred failures); the summary
// fields are set only when every failure was visited.
func (a *Analysis) Each(ctx context.Context, visit func(*Failure) error) error {
	a.Count, a.ByWorst, a.Worst, a.SurvivesAll = 0, [4]int{}, OK, false
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // stops the producer and workers on an early return
		wg.Wait()
	}()
	workers := runtime.GOMAXPROCS(0)
	ring := chunksPerWorker * workers
	size := min(chunkSize, max(64, a.Total()/(2*ring)))
	free := make(chan *chunk, ring)
	ns := len(a.Topology.Services)
	for range ring {
		c := &chunk{fs: make([]Failure, size), ready: make(chan struct{}, 1)}
		backing := make([]Judgement, size*ns)
		for k := range c.fs {
			c.fs[k].Judgements = backing[k*ns : (k+1)*ns : (k+1)*ns]
		}
		free <- c
	}
	work := make(chan *chunk)
	inOrder := make(chan *chunk, ring) // never blocks: only ring chunks exist
	wg.Go(func() { a.produce(ctx, size, free, work, inOrder) })
	for range workers {
		wg.Go(func() {
			st := NewState(a.Topology)
			base := make([]Judgement, ns)
			for i, sv := range a.Topology.Services {
				base[i] = st.Judge(sv)
			}
			for c := range work {
				a.judgeChunk(ctx, st, base, c)
				c.ready <- struct{}{}
			}
		})
	}
	for c := range inOrder {
		select {
		case <-c.ready:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for k := range c.n {
			if k%256 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			f := &c.fs[k]
			w := f.Worst()
			a.ByWorst[w]++
			a.Worst = max(a.Worst, w)
			if err := visit(f); err != nil {
				return err
			}
		}
		a.Count += c.n
		free <- c
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a.SurvivesAll = a.Worst <= Degraded
	return nil
}

// produce hands out consecutive chunks, in order both to the workers and to
// the consumer, as chunks come free.
func (a *Analysis) produce(ctx context.Context, size int, free <-chan *chunk, work, inOrder chan<- *chunk) {
	defer close(inOrder)
	defer close(work)
	p := pos{0, -1}
	for left := a.Total(); left > 0; {
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return
		}
		c.start, c.n = p, min(size, left)
		p = a.advance(p, c.n)
		left -= c.n
		inOrder <- c
		select {
		case work <- c:
		case <-ctx.Done():
			return
		}
	}
}

// judgeChunk judges a chunk's failures, keeping its first domain applied
// across a row of pairs. Services neither domain reaches keep their
// judgement without failures (base).
func (a *Analysis) judgeChunk(ctx context.Context, st *State, base []Judgement, c *chunk) {
	doms := a.Domains
	cur := -1 // the domain applied as first
	defer func() {
		if cur >= 0 {
			st.add(doms[cur].eff, -1)
		}
	}()
	p := c.start
	for k := range c.n {
		if k%256 == 0 && ctx.Err() != nil {
			return
		}
		if p.i != cur {
			if cur >= 0 {
				st.add(doms[cur].eff, -1)
			}
			cur = p.i
			st.add(doms[cur].eff, 1)
		}
		f := &c.fs[k]
		if p.j < 0 {
			f.A, f.B = int32(p.i), -1
			st.judge(f, base, a.global[p.i], a.affects[p.i], nil)
		} else {
			f.A, f.B = int32(p.i), int32(p.j)
			st.add(doms[p.j].eff, 1)
			st.judge(f, base, a.global[p.i] || a.global[p.j], a.affects[p.i], a.affects[p.j])
			st.add(doms[p.j].eff, -1)
		}
		p = a.advance(p, 1)
	}
}

// judge judges the services two domains reach (every one when global) in
// the current state; the others keep base.
func (st *State) judge(f *Failure, base []Judgement, global bool, x, y []int32) {
	svs := st.t.Services
	if global {
		for i, sv := range svs {
			f.Judgements[i] = st.Judge(sv)
		}
		return
	}
	copy(f.Judgements, base)
	for _, s := range x {
		f.Judgements[s] = st.Judge(svs[s])
	}
	for _, s := range y {
		f.Judgements[s] = st.Judge(svs[s])
	}
}
