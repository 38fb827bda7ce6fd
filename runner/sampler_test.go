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

// A sample short of ok keeps what it saw of the members that were not
// healthy, so that a blip can be explained from the history.
func TestSampleShortOfOkSaysWhy(t *testing.T) {
	down := lab.Member{Node: "n3", Detail: "dial tcp 198.18.0.3:9092: connection refused"}
	si := members(healthy, healthy, down)
	si.Members[1].Node, si.Members[1].Role = "n2", "broker"
	ev := sampleEvent(si, nil)
	require.Equal(t, "read-only", ev.Observed)
	require.Equal(t, "kafka-3 on n3 down: dial tcp 198.18.0.3:9092: connection refused", ev.Detail)

	si = members(healthy, lab.Member{Up: true, Node: "n2", Role: "replica", Detail: "lagging"}, healthy)
	si.Writable = true
	ev = sampleEvent(si, nil)
	require.Equal(t, "degraded", ev.Observed)
	require.Equal(t, "kafka-2 on n2 up, not healthy (replica): lagging", ev.Detail)

	si = members(healthy, healthy, healthy)
	si.Error = "no leader"
	ev = sampleEvent(si, nil)
	require.Equal(t, "read-only", ev.Observed)
	require.Equal(t, "no leader", ev.Detail)

	si.Writable, si.Error = true, ""
	require.Empty(t, sampleEvent(si, nil).Detail, "an ok sample says nothing more")
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
