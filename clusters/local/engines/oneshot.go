package engines

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// OneShot runs a short-lived command that works on member m's data (a data
// directory's initialisation, a crash-recovery scan) to its end and returns
// its combined output. It runs in m's node cgroup, when the member has one,
// so that a lab torn down after chaosloop died part-way ends it with the
// node's other processes: started outside it, such a command outlived a
// killed `chaosloop up` and went on writing into the state directory that
// `down` was removing (CI: TestDownAfterCrash, "directory not empty").
func OneShot(cmd *exec.Cmd, m Member) ([]byte, error) {
	if m.Cgroup != "" {
		cg, err := proc.InCgroup(cmd, m.Cgroup)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		defer cg.Close()
	}
	return cmd.CombinedOutput()
}

// Runner is a Launcher that also runs a member's short-lived commands
// where the member runs: on a real cluster's node, whose files and
// binaries are not this machine's.
type Runner interface {
	// Run runs spec's command for member m to its end and returns its
	// combined output; an error when it did not exit 0.
	Run(ctx context.Context, m Member, spec proc.Spec) ([]byte, error)
}

// RunOnce runs spec's short-lived command for member m (a storage
// format, a recovery scan) with the cluster's Launcher when it is a
// Runner, or else on this machine with OneShot (the local lab's hosts
// and kind's nodes share its files and binaries), as spec's user in its
// network namespace, in m's cgroup. spec's Log and Cgroup are not used.
func (c *Cluster) RunOnce(ctx context.Context, m Member, spec proc.Spec) ([]byte, error) {
	if r, ok := c.Launcher.(Runner); ok {
		return r.Run(ctx, m, spec)
	}
	argv := spec.Argv()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = spec.Dir
	if len(spec.Env) > 0 {
		cmd.Env = append(cmd.Environ(), spec.Env...)
	}
	return OneShot(cmd, m)
}
