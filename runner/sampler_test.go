package runner

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
)

func members(states ...lab.Member) lab.ServiceStatus {
	si := lab.ServiceStatus{Name: "kafka"}
	for i, m := range states {
		m.Index, m.Name = i, fmt.Sprintf("kafka-%d", i+1)
		si.Members = append(si.Members, m)
	}
	return si
}

var (
	healthy = lab.Member{Up: true, Healthy: true}
	slow    = lab.Member{TimedOut: true}
	dead    = lab.Member{}
)

// The case: a Kafka broker's probe took over 2 s on a busy machine;
// the others answered and the partitions it leads looked leaderless. That
// is no evidence of refused writes: unknown, not "read-only (2 up)".
func TestObserveSlowProbeIsUnknown(t *testing.T) {
	obs, up, w := lab.Observe(members(healthy, healthy, slow))
	require.Equal(t, lab.Unknown, obs)
	require.Equal(t, 2, up)
	require.False(t, w)

	ev := sampleEvent(members(healthy, healthy, slow), nil)
	require.True(t, ev.Timeout)
	require.Equal(t, lab.Unknown, ev.Observed)
	require.Nil(t, ev.Writable, "no claim about writes")
	require.Equal(t, "probe timed out: kafka-3", ev.Detail)
}

// Negative controls: a member that is not running is evidence, and so is
// a refusal without any slow member.
func TestObserveDownMemberIsEvidence(t *testing.T) {
	obs, up, _ := lab.Observe(members(healthy, healthy, dead))
	require.Equal(t, "read-only", obs)
	require.Equal(t, 2, up)

	si := members(healthy, healthy, dead)
	si.Writable = true
	obs, _, w := lab.Observe(si)
	require.Equal(t, "degraded", obs)
	require.True(t, w)
}

// Writes accepted by the others are evidence whatever the slow member.
func TestObserveWritableWithSlowMemberIsDegraded(t *testing.T) {
	si := members(healthy, healthy, slow)
	si.Writable = true
	obs, up, w := lab.Observe(si)
	require.Equal(t, "degraded", obs)
	require.Equal(t, 2, up)
	require.True(t, w)
	require.False(t, sampleEvent(si, nil).Timeout)
}

// A whole probe that ran past its deadline is a timeout; a refused
// connection is an error, not a timeout.
func TestSampleEventErrors(t *testing.T) {
	ev := sampleEvent(lab.ServiceStatus{}, fmt.Errorf("status: %w", context.DeadlineExceeded))
	require.True(t, ev.Timeout)
	require.Equal(t, lab.Unknown, ev.Observed)

	ev = sampleEvent(lab.ServiceStatus{}, fmt.Errorf("dial: %w", syscall.ECONNREFUSED))
	require.False(t, ev.Timeout)
	require.Empty(t, ev.Observed)
	require.Contains(t, ev.Error, "connection refused")
}

// The engine's whole status running out of time is no evidence either.
func TestObserveServiceTimeoutIsUnknown(t *testing.T) {
	si := members(dead, dead, dead)
	si.TimedOut = true
	obs, _, _ := lab.Observe(si)
	require.Equal(t, lab.Unknown, obs)
	si.TimedOut = false
	obs, _, _ = lab.Observe(si)
	require.Equal(t, "down", obs, "negative control: no member answered and none was slow")
}
