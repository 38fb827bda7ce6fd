package engines

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Users gives the user and group IDs (or names) a pod's process runs as
// for a proc.Spec's user name.
type Users func(name string) (uid, gid string, err error)

// PodCommand is spec's command line as a pod's container runs it: as its
// user (setpriv, with the IDs users gives), its output appended to its
// log file as proc.Start does. A pod per process is how the kind and k3s
// backends run a member's processes.
func PodCommand(spec proc.Spec, users Users) ([]string, error) {
	argv := append([]string{spec.Path}, spec.Args...)
	if spec.User != "" {
		uid, gid, err := users(spec.User)
		if err != nil {
			return nil, err
		}
		argv = append([]string{"setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--"}, argv...)
	}
	if spec.Log == "" {
		return argv, nil
	}
	// sh execs the process: it is the container's main process
	return append([]string{"sh", "-c", `exec "$0" "$@" >>` + shellQuote(spec.Log) + ` 2>&1`}, argv...), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// MemberDirs are the directories a member's process uses on its node:
// the member's data and log directories, its working directory and its
// log file's, less those inside another. A pod mounts each from its node.
func MemberDirs(m Member, spec proc.Spec) []string {
	var dirs []string
	for _, d := range []string{m.DataDir, m.LogDir, spec.Dir, filepath.Dir(spec.Log)} {
		if d != "" && d != "." {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		if len(out) == 0 || !strings.HasPrefix(d, out[len(out)-1]+"/") {
			out = append(out, d)
		}
	}
	return out
}
