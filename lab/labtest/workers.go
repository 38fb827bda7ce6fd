package labtest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// stateless is the suite scenario's stateless service.
const stateless = "app"

// workersFollowPower: a stateless service's workers run on each of its
// members (a process on the local lab, a pod on kind), a member whose node
// loses power loses its worker, and gets it back with the power.
func workersFollowPower(t *testing.T, l lab.Lab) {
	ctx := context.Background()
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	require.NoError(t, l.StartWorkers(ctx, stateless, lab.Worker{Path: sleep, Args: []string{"infinity"}}))
	t.Cleanup(func() { _ = l.StopWorkers(context.Background(), stateless) })
	n := len(l.Topology().Service(stateless).Members)
	Eventually(t, time.Minute, "every worker runs", func() error { return workersUp(ctx, l, n) })

	off := lab.Fault{Action: scenarios.ActionPowerOff, Target: "node/n1"}
	_, err = l.Inject(ctx, off)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.RecoverAll(context.Background()) })
	Eventually(t, time.Minute, "n1's worker gone with its power", func() error { return workersUp(ctx, l, n-1) })
	require.NoError(t, l.Recover(ctx, off))
	Eventually(t, 3*time.Minute, "n1's worker back with its power", func() error { return workersUp(ctx, l, n) })

	require.NoError(t, l.StopWorkers(ctx, stateless))
	Eventually(t, 3*time.Minute, "healthy after the workers", func() error { return AllHealthy(ctx, l) })
}

// workersUp returns nil when exactly want members of the stateless
// service are up.
func workersUp(ctx context.Context, l lab.Lab, want int) error {
	si, err := l.ServiceStatus(ctx, stateless)
	if err != nil {
		return err
	}
	up := 0
	for _, m := range si.Members {
		if m.Up {
			up++
		}
	}
	if up != want {
		return fmt.Errorf("%d of %s's members up, want %d", up, stateless, want)
	}
	return nil
}
