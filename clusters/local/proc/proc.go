// Package proc starts and ends the lab's engine processes: each one inside a
// node's network namespace and cgroup, as a given user, with its PID and start
// time recorded on disk so that a later chaosloop (after a crash) ends exactly
// the processes the lab started, by PID, and never another that reused one.
package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec describes one process to start.
type Spec struct {
	// Name identifies the process in the state directory ("dc1-r1-n1.etcd").
	Name string `json:"name"`
	// NetNS is the network namespace to run in; "" runs in the caller's.
	NetNS string `json:"netns,omitempty"`
	// User to run as ("" keeps root); the engines that refuse root need it.
	User string `json:"user,omitempty"`
	// Cgroup is a cgroup v2 directory to start the process in, atomically
	// (so that powering a node off can kill everything in it at once).
	Cgroup string   `json:"cgroup,omitempty"`
	Path   string   `json:"path"`
	Args   []string `json:"args,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	// Log receives stdout and stderr (appended).
	Log string `json:"log,omitempty"`
}

// Record is what the state directory keeps of a started process.
type Record struct {
	Spec
	PID int `json:"pid"`
	// StartTicks is field 22 of /proc/PID/stat: with the PID it names the
	// process uniquely, so a reused PID is never signalled.
	StartTicks uint64    `json:"startTicks"`
	Started    time.Time `json:"started"`
}

// Argv is the command line that runs spec's command as its user in its
// network namespace. setpriv and ip netns exec exec in place (unlike
// runuser or su), so the PID of the process started is the engine's own.
func (spec Spec) Argv() []string {
	argv := append([]string{spec.Path}, spec.Args...)
	if spec.User != "" {
		argv = append([]string{"setpriv", "--reuid=" + spec.User, "--regid=" + spec.User, "--init-groups", "--"}, argv...)
	}
	if spec.NetNS != "" {
		argv = append([]string{"ip", "netns", "exec", spec.NetNS}, argv...)
	}
	return argv
}

// Start starts spec's process and records it under stateDir. The process
// runs in its own session, so chaosloop's terminal signals do not reach it.
func Start(stateDir string, spec Spec) (*Record, error) {
	argv := spec.Argv()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.Cgroup != "" {
		cg, err := InCgroup(cmd, spec.Cgroup)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
		defer cg.Close()
	}
	if spec.Log != "" {
		if err := os.MkdirAll(filepath.Dir(spec.Log), 0o755); err != nil {
			return nil, err
		}
		lf, err := os.OpenFile(spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer lf.Close()
		cmd.Stdout, cmd.Stderr = lf, lf
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	// Reap the child when it exits so it does not linger as a zombie; the
	// record, not this handle, is how the process is found again.
	go cmd.Wait() //nolint:errcheck
	ticks, _ := StartTicks(cmd.Process.Pid)
	rec := &Record{Spec: spec, PID: cmd.Process.Pid, StartTicks: ticks, Started: time.Now()}
	if err := rec.save(stateDir); err != nil {
		_ = rec.Kill()
		return nil, err
	}
	return rec, nil
}

// InCgroup makes cmd start inside the cgroup v2 directory dir, atomically
// (so that nothing it forks escapes a later kill of the cgroup). The
// returned file must stay open until cmd has started.
func InCgroup(cmd *exec.Cmd, dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(f.Fd())
	return f, nil
}

func recordPath(stateDir, name string) string {
	return filepath.Join(stateDir, "procs", name+".json")
}

func (r *Record) save(stateDir string) error {
	p := recordPath(stateDir, r.Name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Load reads the record of a named process; os.ErrNotExist when none.
func Load(stateDir, name string) (*Record, error) {
	b, err := os.ReadFile(recordPath(stateDir, name))
	if err != nil {
		return nil, err
	}
	r := &Record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordPath(stateDir, name), err)
	}
	return r, nil
}

// List returns every recorded process under stateDir.
func List(stateDir string) ([]*Record, error) {
	ents, err := os.ReadDir(filepath.Join(stateDir, "procs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		r, err := Load(stateDir, name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Forget removes the record of a process (after it has ended).
func Forget(stateDir, name string) error {
	err := os.Remove(recordPath(stateDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Alive reports whether the recorded process still runs (and is the same
// process, not a reused PID). It has ended when every thread has: a zombie
// thread-group leader whose other threads are still exiting is alive (it
// is still in its cgroup and may hold ports, and signals still reach it).
func (r *Record) Alive() bool {
	ticks, err := StartTicks(r.PID)
	if err != nil || (r.StartTicks != 0 && ticks != r.StartTicks) {
		return false
	}
	if st, _ := procState(r.PID); st != "Z" && st != "X" {
		return true
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(r.PID) + "/task")
	if err != nil {
		return false
	}
	for _, task := range tasks {
		f, err := StatFields("/proc/" + strconv.Itoa(r.PID) + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue // released meanwhile
		}
		if f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// Signal sends sig to the recorded process if it is still the same process.
func (r *Record) Signal(sig syscall.Signal) error {
	if !r.Alive() {
		return os.ErrProcessDone
	}
	return syscall.Kill(r.PID, sig)
}

// Kill sends SIGKILL; an already ended process is not an error.
func (r *Record) Kill() error {
	if err := r.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Stop sends SIGTERM (after SIGCONT, in case it is paused), waits up to
// grace, then SIGKILLs. It returns once the process is gone.
func (r *Record) Stop(ctx context.Context, grace time.Duration) error {
	if !r.Alive() {
		return nil
	}
	_ = r.Signal(syscall.SIGCONT)
	_ = r.Signal(syscall.SIGTERM)
	if r.Wait(ctx, grace) {
		return nil
	}
	if err := r.Kill(); err != nil {
		return err
	}
	if !r.Wait(ctx, 5*time.Second) {
		return fmt.Errorf("%s (pid %d) did not end after SIGKILL", r.Name, r.PID)
	}
	return nil
}

// Wait polls until the process has ended or d has passed; true if ended.
func (r *Record) Wait(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.Alive() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// StatFields returns the fields of a /proc stat file (/proc/PID/stat or
// /proc/PID/task/TID/stat) after the command name, which may contain
// spaces and parentheses: state, ppid, …; start ticks is index 19.
func StatFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("unexpected %s", path)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, fmt.Errorf("short %s", path)
	}
	return f, nil
}

func statPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/stat" }

// StartTicks is field 22 of /proc/PID/stat: with the PID it names a
// process uniquely (a reused PID has another start time).
func StartTicks(pid int) (uint64, error) {
	f, err := StatFields(statPath(pid))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func procState(pid int) (string, error) {
	f, err := StatFields(statPath(pid))
	if err != nil {
		return "", err
	}
	return f[0], nil
}

// StopRecorded stops the process recorded under name (SIGTERM, SIGKILL
// after grace) and forgets its record; nothing recorded is nothing to stop.
func StopRecorded(ctx context.Context, stateDir, name string, grace time.Duration) error {
	r, err := Load(stateDir, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.Stop(ctx, grace); err != nil {
		return err
	}
	return Forget(stateDir, name)
}
