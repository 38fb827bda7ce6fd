package mariadb

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

func TestServing(t *testing.T) {
	up := func(healthy ...bool) []engines.MemberStatus {
		var ms []engines.MemberStatus
		for _, h := range healthy {
			ms = append(ms, engines.MemberStatus{Up: true, Healthy: h})
		}
		return ms
	}
	down := engines.MemberStatus{}
	for _, tc := range []struct {
		name   string
		ms     []engines.MemberStatus
		linked []bool
		want   bool
	}{
		{"all linked", up(true, true, true), []bool{false, true, true}, true},
		{"primary read-only", up(false, true, true), []bool{false, true, true}, false},
		{"primary down", []engines.MemberStatus{down, {Up: true}, {Up: true}}, []bool{false, false, false}, false},
		{"replicas down", []engines.MemberStatus{{Up: true, Healthy: true}, down, down}, []bool{false, false, false}, true},
		{"primary cut off from both", up(true, false, false), []bool{false, false, false}, false},
		{"one replica cut off", up(true, true, false), []bool{false, true, false}, true},
		{"tie goes to the primary", up(true, false), []bool{false, false}, true},
	} {
		require.Equal(t, tc.want, serving(tc.ms, tc.linked), tc.name)
	}
}
