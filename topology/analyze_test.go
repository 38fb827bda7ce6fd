package topology

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each visits every failure once, in the spec's order, across many chunks;
// each judgement is the one a fresh state gives (no fault leaks between
// failures, rows or chunks), and the summary counts every failure.
func TestEachOrderAndChunks(t *testing.T) {
	topo, err := Build(bigScenario())
	require.NoError(t, err)
	for _, depth := range []int{1, 2} {
		a := topo.NewAnalysis(depth)
		nd := len(a.Domains)
		want := pos{0, -1}
		k := 0
		err := a.Each(context.Background(), func(f *Failure) error {
			if f.A != int32(want.i) || f.B != int32(want.j) {
				t.Fatalf("failure %d is %d, %d; want %v", k, f.A, f.B, want)
			}
			if k%997 == 0 || f.B == int32(nd-1) {
				st := NewState(topo)
				for _, x := range a.faults(f) {
					require.NoError(t, st.Apply(x))
				}
				for i, sv := range topo.Services {
					require.Equal(t, st.Judge(sv), f.Judgements[i], "%v, %s", a.DomainPaths(f), sv.Name)
				}
			}
			want = a.advance(want, 1)
			k++
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, a.Total(), k)
		if depth == 2 {
			require.Greater(t, k, 2*chunkSize, "several chunks")
		}
		require.Equal(t, pos{nd, -1}, want)
		require.Equal(t, k, a.Count)
		require.Equal(t, k, a.ByWorst[OK]+a.ByWorst[Degraded]+a.ByWorst[ReadOnly]+a.ByWorst[Down])
		require.Equal(t, a.Worst <= Degraded, a.SurvivesAll)
	}
}

// advance(p, n) is n steps of advance(p, 1).
func TestAdvance(t *testing.T) {
	a := &Analysis{Depth: 2, Domains: make([]Domain, 7)}
	var seq []pos
	for p := (pos{0, -1}); p.i < 7; p = a.advance(p, 1) {
		seq = append(seq, p)
	}
	require.Len(t, seq, a.Total())
	for i := range seq {
		for n := range len(seq) - i {
			require.Equal(t, seq[i+n], a.advance(seq[i], n), "%v + %d", seq[i], n)
		}
	}
}

// Each stops at visit's first error, and soon after ctx is cancelled.
func TestEachStops(t *testing.T) {
	topo, err := Build(bigScenario())
	require.NoError(t, err)
	a := topo.NewAnalysis(2)
	stop := errors.New("stop")
	n := 0
	require.ErrorIs(t, a.Each(context.Background(), func(*Failure) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	}), stop)
	require.Equal(t, 10, n)

	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	require.ErrorIs(t, a.Each(ctx, func(*Failure) error {
		n++
		if n == 5000 {
			cancel()
		}
		return nil
	}), context.Canceled)
	require.Less(t, n, 5000+256, "visits end within 256 failures of the cancel")
	require.False(t, a.SurvivesAll, "no summary for an interrupted analysis")
}
