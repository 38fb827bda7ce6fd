package evidence

import (
	"math"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
)

// Goodput kinds: the operations counted as transfers done (a bulk transfer
// counts once, like a single transfer: both are one acknowledged request).
var Goodput = []string{history.OpTransfer, history.OpBulk}

// Series is the run cut into fixed buckets of time, from 0 to the end of
// the history.
type Series struct {
	Bucket time.Duration
	// OK: acknowledged transfers completed in each bucket (by completion).
	OK []int
	// Errors: failed or unknown-outcome transfers (by completion, or by
	// invocation for those never completed).
	Errors []int
	// Dropped arrivals in each bucket.
	Dropped []int
	// Offered: arrivals in each bucket (invoked or dropped), what the
	// open-loop load asked of the system.
	Offered []int
	// Latencies of acknowledged single transfers, by invocation bucket.
	Latencies [][]time.Duration
}

// Series cuts the history into buckets.
func (ix *Index) Series(bucket time.Duration) *Series {
	n := int(ix.End/bucket) + 1
	s := &Series{Bucket: bucket, OK: make([]int, n), Errors: make([]int, n), Dropped: make([]int, n), Offered: make([]int, n), Latencies: make([][]time.Duration, n)}
	at := func(t time.Duration) int { return min(max(int(t/bucket), 0), n-1) }
	for _, kind := range Goodput {
		for _, op := range ix.Ops[kind] {
			s.Offered[at(op.Invoke)]++
			switch {
			case op.Outcome == history.OK:
				s.OK[at(op.Done)]++
				if l, ok := op.Latency(); ok && kind == history.OpTransfer {
					i := at(op.Invoke)
					s.Latencies[i] = append(s.Latencies[i], l)
				}
			case op.Completed:
				s.Errors[at(op.Done)]++
			default:
				s.Errors[at(op.Invoke)]++
			}
		}
	}
	for _, t := range ix.Dropped {
		s.Dropped[at(t)]++
		s.Offered[at(t)]++
	}
	for _, l := range s.Latencies {
		slices.Sort(l)
	}
	return s
}

// Rate is the mean acknowledged transfers per second over [from, to),
// counting whole buckets whose start lies in the range.
func (s *Series) Rate(from, to time.Duration) (float64, bool) { return s.perSecond(s.OK, from, to) }

// OfferedRate is the mean arrivals per second over [from, to).
func (s *Series) OfferedRate(from, to time.Duration) (float64, bool) {
	return s.perSecond(s.Offered, from, to)
}

// perSecond is the mean of a per-bucket count per second over [from, to).
func (s *Series) perSecond(v []int, from, to time.Duration) (float64, bool) {
	i, j := s.span(from, to)
	if j <= i {
		return 0, false
	}
	return float64(s.Sum(v, from, to)) / (float64(j-i) * s.Bucket.Seconds()), true
}

// Sum adds a per-bucket count over [from, to).
func (s *Series) Sum(v []int, from, to time.Duration) int {
	i, j := s.span(from, to)
	sum := 0
	for _, x := range v[i:max(i, j)] {
		sum += x
	}
	return sum
}

func (s *Series) span(from, to time.Duration) (int, int) {
	i := int((from + s.Bucket - 1) / s.Bucket) // first bucket starting at or after from
	j := int((to + s.Bucket - 1) / s.Bucket)
	return min(max(i, 0), len(s.OK)), min(max(j, 0), len(s.OK))
}

// Percentile returns the nearest-rank p-quantile (0<p≤1) of sorted values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	r := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(r, 0), len(sorted)-1)]
}

// Latencies returns the sorted invoke→ok latencies of single transfers
// attributed to [from, to): a transfer belongs where it was invoked, unless
// a fault was injected while it was in flight — then it is that fault's
// (the last such). A transfer caught by a power-off a second after it
// started waits out the failover: that wait is the fault's doing, and
// counting it where it was invoked made the baseline's p99 look like a
// 20 s stall (measured: quickstart, transfers invoked 1–5 s before the
// inject).
func (ix *Index) Latencies(from, to time.Duration) []time.Duration {
	var out []time.Duration
	for _, l := range ix.TimedLatencies(from, to) {
		out = append(out, l.Latency)
	}
	slices.Sort(out)
	return out
}

// TimedLatency is an acknowledged transfer's latency with the time it is
// attributed to.
type TimedLatency struct {
	At, Latency time.Duration
}

// TimedLatencies are the latencies Latencies sorts, each with the time it
// is attributed to, in history order.
func (ix *Index) TimedLatencies(from, to time.Duration) []TimedLatency {
	var out []TimedLatency
	for _, op := range ix.Ops[history.OpTransfer] {
		if op.Outcome != history.OK {
			continue
		}
		if at := ix.attributed(op); at < from || at >= to {
			continue
		}
		if l, ok := op.Latency(); ok {
			out = append(out, TimedLatency{At: ix.attributed(op), Latency: l})
		}
	}
	return out
}

// Failures counts the failed or unknown-outcome transfers (single and
// bulk) attributed to [from, to) as Latencies attributes acknowledged
// ones: a transfer that timed out after a heal failed because of the
// fault it was waiting out, not because of what came after.
func (ix *Index) Failures(from, to time.Duration) int {
	n := 0
	for _, kind := range Goodput {
		for _, op := range ix.Ops[kind] {
			if op.Outcome == history.OK {
				continue
			}
			if at := ix.attributed(op); at >= from && at < to {
				n++
			}
		}
	}
	return n
}

// attributed is when op counts as having happened for per-phase figures:
// the last fault inject strictly inside its flight, else its invocation.
func (ix *Index) attributed(op *Op) time.Duration {
	at := op.Invoke
	if !op.Completed {
		return at
	}
	for _, f := range ix.Faults {
		if f.Injected && f.Inject > at && f.Inject < op.Done {
			at = f.Inject
		}
	}
	return at
}
