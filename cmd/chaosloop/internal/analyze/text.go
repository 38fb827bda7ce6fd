package analyze

import (
	"bufio"
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/chaosloop/chaosloop/topology"
)

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiMag    = "\x1b[35m"
	ansiRed    = "\x1b[1;31m"
)

var verdictColor = map[topology.Verdict]string{
	topology.OK: ansiGreen, topology.Degraded: ansiYellow, topology.ReadOnly: ansiMag, topology.Down: ansiRed,
}

// textBudget bounds the rows the text matrix buffers at once (bytes): the
// whole matrix, worst first, needs every failure sorted, which a depth-2
// analysis of thousands of nodes cannot hold.
const textBudget = 32 << 20

// lossBit marks a packed cell whose acknowledged writes may be lost; the
// low bits are the verdict.
const lossBit = 4

// WriteText judges every failure and prints the failures × services matrix,
// the worst failures first (then those hurting more services, then in the
// spec's order), and a summary. With a limit it keeps only the limit worst
// rows (a heap of limit rows of a byte per service) while the analysis
// streams by. Without one, the rows are sorted in
// memory while they fit textBudget; beyond it the analysis is repeated, each
// pass printing the next severities whose rows fit (a severity too large to
// fit is printed as its rows come, since the spec's order is their order).
func WriteText(ctx context.Context, w io.Writer, a *topology.Analysis, color bool, limit int) error {
	return writeText(ctx, w, a, color, limit, textBudget)
}

// writeText is WriteText with a budget (tests make it tiny).
func writeText(ctx context.Context, w io.Writer, a *topology.Analysis, color bool, limit, budget int) error {
	tw := newTextWriter(w, a, color, budget)
	var err error
	if limit > 0 && limit < a.Total() {
		err = tw.writeWorst(ctx, limit)
	} else {
		err = tw.writeAll(ctx)
	}
	if err != nil {
		return err
	}
	tw.summary(limit)
	return tw.bw.Flush()
}

type textWriter struct {
	a      *topology.Analysis
	bw     *bufio.Writer
	color  bool
	budget int
	ns     int   // services
	colW   []int // per service column
	domW   int   // the failure column
	// cells[i][c]: service i's column for packed cell c, padded.
	cells [][2 * lossBit]string
}

func newTextWriter(w io.Writer, a *topology.Analysis, color bool, budget int) *textWriter {
	t := a.Topology
	tw := &textWriter{a: a, bw: bufio.NewWriter(w), color: color, budget: budget, ns: len(t.Services), colW: make([]int, len(t.Services))}
	tw.cells = make([][2 * lossBit]string, len(t.Services))
	for i, sv := range t.Services {
		tw.colW[i] = max(len(sv.Name), len("read-only*"))
		for c := range 2 * lossBit {
			v := topology.Verdict(c &^ lossBit)
			cell := v.String()
			if c&lossBit != 0 {
				cell += "*"
			}
			pad := strings.Repeat(" ", tw.colW[i]-len(cell))
			if color {
				cell = verdictColor[v] + cell + ansiReset
			}
			tw.cells[i][c] = "  " + cell + pad
		}
	}
	return tw
}

// severity orders failures: the worst verdict first, then the sum of every
// service's verdict. It packs a failure's cells into dst.
func (tw *textWriter) severity(dst []byte, f *topology.Failure) ([]byte, int) {
	worst, hurt := topology.OK, 0
	for _, j := range f.Judgements {
		worst = max(worst, j.Verdict)
		hurt += int(j.Verdict)
		c := byte(j.Verdict)
		if j.LossPossible {
			c |= lossBit
		}
		dst = append(dst, c)
	}
	return dst, int(worst)*(3*tw.ns+1) + hurt
}

func (tw *textWriter) keys() int { return 4 * (3*tw.ns + 1) }

// row is one failure of the matrix, its judgements packed one byte each.
type row struct {
	key, seq int
	a, b     int32
	cells    []byte
}

// rowHeap keeps the least severe row on top, to be replaced by a worse one.
type rowHeap []row

func (h rowHeap) Len() int { return len(h) }
func (h rowHeap) Less(i, j int) bool {
	return h[i].key < h[j].key || h[i].key == h[j].key && h[i].seq > h[j].seq
}
func (h rowHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *rowHeap) Push(x any)   { *h = append(*h, x.(row)) }
func (h *rowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// writeWorst prints the limit most severe failures: a heap of limit rows.
func (tw *textWriter) writeWorst(ctx context.Context, limit int) error {
	var h rowHeap
	seq := 0
	var scratch []byte
	err := tw.a.Each(ctx, func(f *topology.Failure) error {
		var key int
		scratch, key = tw.severity(scratch[:0], f)
		switch {
		case len(h) < limit:
			heap.Push(&h, row{key: key, seq: seq, a: f.A, b: f.B, cells: slices.Clone(scratch)})
		case key > h[0].key: // a later row of equal severity comes after
			r := &h[0]
			r.key, r.seq, r.a, r.b = key, seq, f.A, f.B
			copy(r.cells, scratch)
			heap.Fix(&h, 0)
		}
		seq++
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(h, func(x, y row) int { return cmp.Or(cmp.Compare(y.key, x.key), cmp.Compare(x.seq, y.seq)) })
	tw.domW = len("FAILURE")
	for _, r := range h {
		tw.domW = max(tw.domW, len(tw.failure(r.a, r.b)))
	}
	tw.header()
	for _, r := range h {
		tw.row(tw.failure(r.a, r.b), r.cells)
	}
	return nil
}

// writeAll prints every failure, the most severe first: sorted in memory
// when every row fits the budget, else by severities in passes.
func (tw *textWriter) writeAll(ctx context.Context) error {
	tw.domW = tw.widestFailure()
	if tw.a.Total()*(16+tw.ns) <= tw.budget {
		return tw.sortInMemory(ctx)
	}
	counts, err := tw.histogram(ctx)
	if err != nil {
		return err
	}
	tw.header()
	rowBytes := 8 + tw.ns
	for hi := tw.keys() - 1; hi >= 0; {
		switch {
		case counts[hi] == 0:
			hi--
		case counts[hi]*rowBytes > tw.budget:
			if err := tw.stream(ctx, hi); err != nil {
				return err
			}
			hi--
		default:
			lo, size := hi, 0
			for lo >= 0 && size+counts[lo]*rowBytes <= tw.budget {
				size += counts[lo] * rowBytes
				lo--
			}
			if err := tw.collect(ctx, lo+1, hi, counts); err != nil {
				return err
			}
			hi = lo
		}
	}
	return nil
}

// sortInMemory judges every failure once, keeping every row (16 bytes and
// a byte per service each), and prints them by a stable counting sort.
func (tw *textWriter) sortInMemory(ctx context.Context) error {
	n := tw.a.Total()
	ab := make([]int32, 0, 2*n)
	cells := make([]byte, 0, n*tw.ns)
	keys := make([]int32, 0, n)
	counts := make([]int, tw.keys())
	err := tw.a.Each(ctx, func(f *topology.Failure) error {
		var key int
		cells, key = tw.severity(cells, f)
		ab = append(ab, f.A, f.B)
		keys = append(keys, int32(key))
		counts[key]++
		return nil
	})
	if err != nil {
		return err
	}
	next := make([]int, len(counts)) // where each severity's rows start
	at := 0
	for k := len(counts) - 1; k >= 0; k-- {
		next[k] = at
		at += counts[k]
	}
	order := make([]int32, len(keys))
	for r, k := range keys {
		order[next[k]] = int32(r)
		next[k]++
	}
	tw.header()
	for _, r := range order {
		tw.row(tw.failure(ab[2*r], ab[2*r+1]), cells[int(r)*tw.ns:int(r+1)*tw.ns])
	}
	return nil
}

// histogram runs the analysis once, counting the failures of each severity.
func (tw *textWriter) histogram(ctx context.Context) ([]int, error) {
	counts := make([]int, tw.keys())
	var scratch []byte
	err := tw.a.Each(ctx, func(f *topology.Failure) error {
		var key int
		scratch, key = tw.severity(scratch[:0], f)
		counts[key]++
		return nil
	})
	return counts, err
}

// collect runs the analysis once, keeping the failures of severities
// lo..hi (counts of them), and prints them, the most severe first.
func (tw *textWriter) collect(ctx context.Context, lo, hi int, counts []int) error {
	type bucket struct {
		ab    []int32 // a, b per row
		cells []byte  // ns per row
	}
	bs := make([]bucket, hi+1)
	for k := lo; k <= hi; k++ {
		bs[k] = bucket{make([]int32, 0, 2*counts[k]), make([]byte, 0, tw.ns*counts[k])}
	}
	var scratch []byte
	err := tw.a.Each(ctx, func(f *topology.Failure) error {
		var key int
		scratch, key = tw.severity(scratch[:0], f)
		if key >= lo && key <= hi {
			b := &bs[key]
			b.ab = append(b.ab, f.A, f.B)
			b.cells = append(b.cells, scratch...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for k := hi; k >= lo; k-- {
		b := &bs[k]
		for r := range len(b.ab) / 2 {
			tw.row(tw.failure(b.ab[2*r], b.ab[2*r+1]), b.cells[r*tw.ns:(r+1)*tw.ns])
		}
	}
	return nil
}

// stream runs the analysis once, printing the failures of one severity as
// they come.
func (tw *textWriter) stream(ctx context.Context, key int) error {
	var scratch []byte
	return tw.a.Each(ctx, func(f *topology.Failure) error {
		var k int
		scratch, k = tw.severity(scratch[:0], f)
		if k == key {
			tw.row(tw.failure(f.A, f.B), scratch)
		}
		return nil
	})
}

// failure names a failure's domains.
func (tw *textWriter) failure(a, b int32) string {
	if b < 0 {
		return tw.a.Domains[a].Path
	}
	return tw.a.Domains[a].Path + " + " + tw.a.Domains[b].Path
}

// widestFailure is the width of the failure column when every failure is
// shown: the longest domain or, at depth 2, the two longest joined.
func (tw *textWriter) widestFailure() int {
	first, second := 0, -1
	for _, d := range tw.a.Domains {
		switch n := len(d.Path); {
		case n > first:
			first, second = n, first
		case n > second:
			second = n
		}
	}
	w := max(len("FAILURE"), first)
	if tw.a.Depth >= 2 && len(tw.a.Domains) > 1 {
		w = max(w, first+len(" + ")+second)
	}
	return w
}

func (tw *textWriter) header() {
	fmt.Fprintf(tw.bw, "%-*s", tw.domW, "FAILURE")
	for i, sv := range tw.a.Topology.Services {
		fmt.Fprintf(tw.bw, "  %-*s", tw.colW[i], sv.Name)
	}
	fmt.Fprintln(tw.bw)
}

// row prints a failure and its packed cells.
func (tw *textWriter) row(failure string, cells []byte) {
	tw.bw.WriteString(failure)
	// As fmt's %-*s: the width counts runes.
	for range tw.domW - utf8.RuneCountInString(failure) {
		tw.bw.WriteByte(' ')
	}
	for i, c := range cells {
		tw.bw.WriteString(tw.cells[i][c])
	}
	tw.bw.WriteByte('\n')
}

func (tw *textWriter) summary(limit int) {
	a, bw := tw.a, tw.bw
	fmt.Fprintln(bw)
	if limit > 0 && limit < a.Count {
		fmt.Fprintf(bw, "(showing the %d worst of %d failures)\n", limit, a.Count)
	}
	fmt.Fprintf(bw, "%s: %d failures judged at depth %d against %d services: %d leave every service ok, %d degrade some, %d make some read-only, %d take some down.\n",
		a.Topology.Name, a.Count, a.Depth, tw.ns, a.ByWorst[topology.OK], a.ByWorst[topology.Degraded], a.ByWorst[topology.ReadOnly], a.ByWorst[topology.Down])
	if a.SurvivesAll {
		fmt.Fprintf(bw, "Worst: %s. Every service survives every failure.\n", a.Worst)
	} else {
		fmt.Fprintf(bw, "Worst: %s. NOT every service survives: see the rows above marked read-only or down.\n", a.Worst)
	}
	fmt.Fprintln(bw, "(* acknowledged writes may be lost: an async replica or Redis replica was promoted)")
}
