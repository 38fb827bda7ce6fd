package arrival

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// With every VU busy, arrivals are dropped, never queued, and the plan
// still sees every arrival in order.
func TestDropsWhenNoVUIsFree(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var planned, dropped, worked []int64
	var st Stats
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Config{Rate: 100, Duration: 200 * time.Millisecond, VUs: 1}, &st,
			func(i int64) int64 { planned = append(planned, i); return i },
			func(ctx context.Context, vu int, i int64) {
				mu.Lock()
				worked = append(worked, i)
				mu.Unlock()
				<-release
			},
			func(i int64) { dropped = append(dropped, i) })
	}()
	require.Eventually(t, func() bool { return st.Arrivals.Load() == 20 }, 10*time.Second, 10*time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	require.Len(t, planned, 20)
	for i, v := range planned {
		require.Equal(t, int64(i), v)
	}
	require.LessOrEqual(t, len(worked), 1, "one VU takes at most one arrival while blocked")
	require.Equal(t, 20, len(worked)+len(dropped))
	require.Equal(t, int64(len(dropped)), st.Dropped.Load())
	require.Zero(t, st.InFlight.Load())
}

func TestRejectsBadConfig(t *testing.T) {
	err := Run(context.Background(), Config{Rate: 0, VUs: 1}, nil, func(int64) int { return 0 }, func(context.Context, int, int) {}, func(int) {})
	require.Error(t, err)
}
