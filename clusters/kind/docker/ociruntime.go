package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The OCI runtime wrapper. kind starts its node containers --privileged,
// which asks runc for every capability the kernel knows; this VM's
// capability bounding set lacks CAP_SYS_RESOURCE, so runc fails with
// "unable to apply caps: operation not permitted". The wrapper, registered
// as dockerd's default runtime, removes from what a container asks for the
// capabilities this process cannot have, then runs runc as it was called.

// capNames are the capabilities by number (linux/capability.h).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// MissingCaps are the capabilities known by name that the bounding set
// of this process lacks, read from /proc/self/status.
func MissingCaps() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("CapBnd %q: %w", hex, err)
			}
			return missingFrom(bnd), nil
		}
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}

func missingFrom(bounding uint64) map[string]bool {
	missing := map[string]bool{}
	for i, name := range capNames {
		if bounding&(1<<i) == 0 {
			missing[name] = true
		}
	}
	return missing
}

// DropCaps removes the missing capabilities from every set of an OCI
// process object (runc exec's --process file), keeping everything else as
// it was, numbers included. changed says whether there was anything to
// remove.
func DropCaps(process []byte, missing map[string]bool) (out []byte, changed bool, err error) {
	return dropCaps(process, missing, false)
}

// DropCapsInBundle is DropCaps on the "process" of a bundle's config.json.
func DropCapsInBundle(config []byte, missing map[string]bool) (out []byte, changed bool, err error) {
	return dropCaps(config, missing, true)
}

func dropCaps(doc []byte, missing map[string]bool, bundle bool) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false, err
	}
	p := m
	if bundle {
		p, _ = m["process"].(map[string]any)
	}
	if p == nil || drop(p, missing) == 0 {
		return doc, false, nil
	}
	out, err := json.Marshal(m)
	return out, err == nil, err
}

// drop filters the capability sets of process p and counts what it removed.
func drop(p map[string]any, missing map[string]bool) int {
	caps, _ := p["capabilities"].(map[string]any)
	n := 0
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if s, _ := c.(string); missing[s] {
				n++
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	return n
}

// RunRuntime is the wrapper's main: args are runc's, as containerd's shim
// passes them. It rewrites the file that create, run or exec reads, then
// replaces itself with runc.
func RunRuntime(args []string) error {
	runc, err := findRunc()
	if err != nil {
		return err
	}
	if err := rewriteFor(args); err != nil {
		return fmt.Errorf("chaosloop oci-runtime: %w", err)
	}
	return syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
}

func findRunc() (string, error) {
	if p, err := exec.LookPath("runc"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chaosloop oci-runtime: runc not found (install %s)", strings.Join(Packages, " "))
}

// rewriteFor finds runc's subcommand in args and rewrites its input.
func rewriteFor(args []string) error {
	sub, i := subcommand(args)
	switch sub {
	case "create", "run":
		bundle := flagValue(args[i+1:], "bundle", "b")
		if bundle == "" {
			bundle = "."
		}
		return rewriteFile(filepath.Join(bundle, "config.json"), DropCapsInBundle)
	case "exec":
		if p := flagValue(args[i+1:], "process", "p"); p != "" {
			return rewriteFile(p, DropCaps)
		}
	}
	return nil
}

// runcValueFlags are runc's global flags that take a value.
var runcValueFlags = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// subcommand returns runc's subcommand and its index in args.
func subcommand(args []string) (string, int) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a, i
		}
		if runcValueFlags[a] {
			i++
		}
	}
	return "", len(args)
}

// flagValue is the value of --long/-short in args ("--x v", "--x=v").
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		for _, f := range []string{"--" + long, "-" + short} {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

func rewriteFile(path string, rewrite func([]byte, map[string]bool) ([]byte, bool, error)) error {
	missing, err := MissingCaps()
	if err != nil || len(missing) == 0 {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, changed, err := rewrite(b, missing)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return nil
	}
	return os.WriteFile(path, out, 0o600)
}
