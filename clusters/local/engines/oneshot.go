package engines

import (
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
