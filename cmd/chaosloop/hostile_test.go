package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The limits each hostile input runs under. Go reserves about 760 MB of
// address space before main runs (a cgo build about 2 GB, for glibc's
// per-thread arenas), so the binary is built without cgo and its address
// space capped at 1 GiB: about 256 MB left for real use. RLIMIT_DATA caps
// what it can map writable at 256 MiB, the hard memory limit proper, and
// GOMEMLIMIT makes the collector work before either is reached. CPU
// seconds, not wall time, bound the time: the test machine may be busy.
const (
	limitAS       = 1 << 30
	limitData     = 256 << 20
	limitCPU      = 10 * time.Second
	goMemLimit    = "200MiB"
	wallTimeout   = 60 * time.Second
	maxStderrKeep = 64 << 10
)

// buildBinary builds chaosloop without cgo into a temporary directory.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "chaosloop")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "go build: %s", out)
	return bin
}

// outcome is one limited run of the binary.
type outcome struct {
	code          int
	signal        string
	stderr        string
	stderrLines   int
	stdoutBytes   int
	wall, cpu     time.Duration
	peakRSSKBytes int64
}

// capped keeps the first maxStderrKeep bytes written and counts lines, so
// that a regression printing a million lines cannot fill the test's memory.
type capped struct {
	buf   bytes.Buffer
	lines int
	n     int
}

func (c *capped) Write(p []byte) (int, error) {
	c.n += len(p)
	c.lines += bytes.Count(p, []byte("\n"))
	if room := maxStderrKeep - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// childEnv switches the test binary into runChild (see runLimited).
const childEnv = "CHAOSLOOP_HOSTILE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild(os.Args[1], os.Args[2:]))
	}
	os.Exit(m.Run())
}

// usage is what runChild reports of the binary's run on file descriptor 3.
type usage struct {
	Code, Signal  string
	MaxRSSKB      int64
	UserNS, SysNS int64
}

// runChild runs the binary under the limits (set by the shell that execs
// it) and reports its exit and resource use.
func runChild(bin string, args []string) int {
	script := fmt.Sprintf(`ulimit -v %d && ulimit -d %d && ulimit -t %d && exec "$0" "$@"`,
		limitAS>>10, limitData>>10, int(limitCPU.Seconds()))
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "runChild:", err)
		return 99
	}
	st := cmd.ProcessState
	u := usage{Code: strconv.Itoa(st.ExitCode())}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		u.Signal = ws.Signal().String()
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSSKB, u.UserNS, u.SysNS = ru.Maxrss, ru.Utime.Nano(), ru.Stime.Nano()
	}
	if err := json.NewEncoder(os.NewFile(3, "usage")).Encode(u); err != nil {
		return 99
	}
	return 0
}

// runLimited runs the binary under RLIMIT_AS, RLIMIT_DATA and RLIMIT_CPU
// and returns how it ended. A child of the test binary, not of the test
// itself, starts it: Linux counts a vfork-ed child's peak memory from its
// parent's, and the test's own peak (its inputs) would hide the binary's.
func runLimited(tb testing.TB, bin string, args ...string) outcome {
	tb.Helper()
	return runLimitedEnv(tb, nil, bin, args...)
}

// runLimitedEnv is runLimited with env added to the binary's environment.
func runLimitedEnv(tb testing.TB, env []string, bin string, args ...string) outcome {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wallTimeout)
	defer cancel()
	r, w, err := os.Pipe()
	require.NoError(tb, err)
	defer r.Close()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{bin}, args...)...)
	cmd.Env = append(append(os.Environ(), childEnv+"=1", "GOMEMLIMIT="+goMemLimit, "NO_COLOR=1"), env...)
	cmd.ExtraFiles = []*os.File{w}
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	w.Close()
	o := outcome{wall: time.Since(start), stderr: stderr.buf.String(), stderrLines: stderr.lines, stdoutBytes: stdout.n}
	require.NoError(tb, err, "runChild: %s", o.stderr)
	var u usage
	require.NoError(tb, json.NewDecoder(r).Decode(&u))
	o.code, _ = strconv.Atoi(u.Code)
	o.signal, o.peakRSSKBytes = u.Signal, u.MaxRSSKB
	o.cpu = time.Duration(u.UserNS + u.SysNS)
	return o
}

// crashMarks are what the Go runtime prints when it panics or dies.
var crashMarks = []string{"goroutine ", "panic", "fatal error", "SIGSEGV", "runtime."}

func TestGoStartsUnderLimits(t *testing.T) {
	bin := buildBinary(t)
	o := runLimited(t, bin, "validate", "../../scenarios/quickstart.yaml")
	require.Equal(t, 0, o.code, "quickstart must validate under the limits: %s", o.stderr)
}

// TestHostileInputs: every hostile file makes validate and analyze exit 2
// with positioned messages, without crashing, under the limits.
func TestHostileInputs(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, c.name+".yaml")
			require.NoError(t, os.WriteFile(file, []byte(c.gen()), 0o644))
			for _, command := range []string{"validate", "analyze"} {
				o := runLimited(t, bin, command, file)
				checkRefused(t, c, command, file, o)
				t.Logf("%s: exit %d in %v (cpu %v), peak %d MB, %d stderr lines",
					command, o.code, o.wall.Round(time.Millisecond), o.cpu.Round(time.Millisecond), o.peakRSSKBytes>>10, o.stderrLines)
			}
		})
	}
}

func checkRefused(t *testing.T, c hostileCase, command, file string, o outcome) {
	t.Helper()
	first, _, _ := strings.Cut(o.stderr, "\n")
	require.Empty(t, o.signal, "%s: killed (limits crossed?): %s", command, first)
	for _, m := range crashMarks {
		require.NotContains(t, o.stderr, m, "%s crashed", command)
	}
	require.NotContains(t, o.stderr, "\x1b", "%s: raw ESC on stderr", command)
	exits := orDefault(c.exits, []int{2})
	require.Contains(t, exits, o.code, "%s: exit status; stderr: %.300s", command, o.stderr)
	require.Contains(t, o.stderr, c.want, "%s", command)
	require.LessOrEqual(t, o.stderrLines, 60, "%s: error lines are capped", command)
	// The aims are 1 s and 100 MB (README, "Hostile input"); these bounds
	// leave room for a busy machine.
	require.Less(t, o.cpu, 3*time.Second, "%s: CPU time", command)
	require.Less(t, o.peakRSSKBytes, int64(200<<10), "%s: peak memory (KB)", command)
	if o.code != 2 {
		return
	}
	m := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:(\d+:\d+): `).FindStringSubmatch(first)
	require.NotNil(t, m, "%s: first line is not positioned: %q", command, first)
	if c.at != "" {
		require.Equal(t, c.at, m[1], "%s: position of %q", command, first)
	}
}

// orDefault returns a unless it is empty.
func orDefault(a, b []int) []int {
	if len(a) > 0 {
		return slices.Clone(a)
	}
	return b
}

// BenchmarkHostile records each hostile input's time and peak memory
// (`chaosloop validate`, one run per iteration): the README's "Hostile
// input" table.
func BenchmarkHostile(b *testing.B) {
	bin := buildBinary(b)
	dir := b.TempDir()
	for _, c := range hostileCases() {
		file := filepath.Join(dir, c.name+".yaml")
		require.NoError(b, os.WriteFile(file, []byte(c.gen()), 0o644))
		b.Run(c.name, func(b *testing.B) {
			var cpu, wall time.Duration
			var peak int64
			for b.Loop() {
				o := runLimited(b, bin, "validate", file)
				if !slices.Contains(orDefault(c.exits, []int{2}), o.code) {
					b.Fatalf("exit %d: %.300s", o.code, o.stderr)
				}
				cpu, wall, peak = cpu+o.cpu, wall+o.wall, max(peak, o.peakRSSKBytes)
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms/op")
			b.ReportMetric(float64(peak)/1024, "peak-MB")
			b.ReportMetric(0, "ns/op")
		})
	}
}
