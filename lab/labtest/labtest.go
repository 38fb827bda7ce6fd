// Package labtest is the provider conformance suite: what every backend
// behind the lab seam must do, checked the same way on each (the local lab
// today, kind and K3S later), in the style of etcd's robustness tests: each
// fault the backend says it supports has the effect analyze predicts, and
// recovers.
//
// A backend's own test calls Run with its provider and the two things only
// it knows: what of a lab could be left on the machine, and how to kill its
// CLI part-way.
package labtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Harness is the backend under test.
type Harness struct {
	Provider lab.Provider
	// Name is the lab's name, unique to the backend's test.
	Name string
	// Leftovers lists what of lab name is still on the machine (processes,
	// networks, rules, state); empty when nothing is.
	Leftovers func(ctx context.Context, name string) ([]string, error)
	// Crash stands the scenario source up with the backend's CLI and ends
	// it with sig part-way, returning once it is gone. Nil skips the case.
	Crash func(t *testing.T, name string, source []byte, sig os.Signal)
}

// Run runs the suite: up, status, a stateless service's workers through
// a power cycle, every supported fault, down, and a killed CLI followed
// by down.
func Run(t *testing.T, h Harness) {
	src := Source(h.Name)
	sc, err := Parse(h.Name, src)
	require.NoError(t, err)
	ctx := context.Background()
	_ = h.Provider.Down(ctx, h.Name) // a lab an earlier failed run left
	var l lab.Lab
	ok := t.Run("UpIsHealthyAndIdempotent", func(t *testing.T) { l = upTwice(t, h.Provider, sc) })
	if !ok || l == nil {
		_ = h.Provider.Down(ctx, h.Name)
		t.FailNow()
	}
	t.Run("StatusNamesEveryMember", func(t *testing.T) { statusNamesEveryMember(t, l) })
	t.Run("WorkersFollowTheirNodesPower", func(t *testing.T) { workersFollowPower(t, l) })
	caps := h.Provider.Capabilities()
	for _, c := range FaultCases(sc) {
		t.Run(strings.ReplaceAll(c.Fault.Key(), "/", "_"), func(t *testing.T) {
			tg, err := scenarios.ParseTarget(c.Fault.Target)
			require.NoError(t, err)
			if !caps.Supports(c.Fault.Action, tg.Kind) {
				t.Skipf("the %s backend does not support %s on %s", h.Provider.Name(), c.Fault.Action, tg.Kind)
			}
			checkFault(t, l, c)
		})
	}
	t.Run("DownLeavesNothing", func(t *testing.T) {
		require.NoError(t, h.Provider.Down(ctx, h.Name))
		requireNothingLeft(t, h, h.Name)
	})
	if h.Crash == nil {
		return
	}
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGKILL} {
		t.Run("CLIEndedBy"+strings.ToUpper(sigName(sig))+"ThenDownLeavesNothing", func(t *testing.T) {
			h.Crash(t, h.Name, []byte(src), sig)
			require.NoError(t, h.Provider.Down(ctx, h.Name))
			requireNothingLeft(t, h, h.Name)
		})
	}
}

func sigName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "int"
	}
	return "kill"
}

// upTwice stands the lab up, checks that every service is healthy and
// that a second Up of the same scenario reuses it.
func upTwice(t *testing.T, p lab.Provider, sc *scenarios.Scenario) lab.Lab {
	ctx := context.Background()
	l, err := p.Up(ctx, sc)
	require.NoError(t, err)
	require.NoError(t, AllHealthy(ctx, l))
	names, err := p.List(ctx)
	require.NoError(t, err)
	require.Contains(t, names, sc.Name)
	again, err := p.Up(ctx, sc)
	require.NoError(t, err, "Up is idempotent")
	require.Equal(t, sc.Name, again.Name())
	require.NoError(t, AllHealthy(ctx, again))
	return again
}

// statusNamesEveryMember: every service and member the topology places is
// in the status, on its node.
func statusNamesEveryMember(t *testing.T, l lab.Lab) {
	st, err := l.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, l.Name(), st.Name)
	for _, sv := range l.Topology().Services {
		i := slices.IndexFunc(st.Services, func(s lab.ServiceStatus) bool { return s.Name == sv.Name })
		require.GreaterOrEqual(t, i, 0, "service %s in the status", sv.Name)
		ss := st.Services[i]
		require.Len(t, ss.Members, len(sv.Members), "members of %s", sv.Name)
		for k, n := range sv.Members {
			require.Equal(t, k, ss.Members[k].Index)
			require.NotEmpty(t, ss.Members[k].Name)
			require.Equal(t, n.Name, ss.Members[k].Node, "%s member %d's node", sv.Name, k)
		}
	}
}

// AllHealthy returns nil when every service is healthy, or says which
// member (or service) is not and why.
func AllHealthy(ctx context.Context, l lab.Observer) error {
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st.Services {
		if s.Healthy {
			continue
		}
		for _, m := range s.Members {
			if !m.Healthy {
				return fmt.Errorf("%s member %d not healthy: %s", s.Name, m.Index, m.Detail)
			}
		}
		return fmt.Errorf("%s: %s", s.Name, s.Error)
	}
	return nil
}

func requireNothingLeft(t *testing.T, h Harness, name string) {
	t.Helper()
	left, err := h.Leftovers(context.Background(), name)
	require.NoError(t, err)
	require.Empty(t, left, "left on the machine after down")
	names, err := h.Provider.List(context.Background())
	require.NoError(t, err)
	require.NotContains(t, names, name)
}

// Eventually polls cond every half second until it holds or timeout passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, timeout, err)
}
