package root_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

// TestMain lets a test start this test binary as chaosloop itself (the
// signal tests need a real process).
func TestMain(m *testing.M) {
	if os.Getenv("CHAOSLOOP_TEST_AS_MAIN") == "1" {
		ctx, stop := cli.NotifyContext(context.Background(), nil)
		code := root.Run(ctx, cli.Std(), os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func runIn(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// execute runs the root command extended with extra commands.
func execute(ctx context.Context, extra []*cobra.Command, args ...string) (code int, stderr string) {
	var out, errb bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}
	cmd := root.NewCommand(streams)
	cmd.AddCommand(extra...)
	return root.Execute(ctx, cmd, streams, args), errb.String()
}

func TestPanicExits1WithReport(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	boom := &cobra.Command{Use: "boom", RunE: func(*cobra.Command, []string) error { panic("kaboom") }}
	// A panic inside Interruptible's goroutine must be caught too.
	boomBg := &cobra.Command{Use: "boom-bg", RunE: func(c *cobra.Command, _ []string) error {
		return cli.Interruptible(c.Context(), func() error {
			var m map[string]int
			m["x"] = 1 // nil map: a runtime panic
			return nil
		})
	}}
	for _, name := range []string{"boom", "boom-bg"} {
		code, stderr := execute(context.Background(), []*cobra.Command{boom, boomBg}, name)
		require.Equal(t, cli.ExitFail, code, "a panic is chaosloop failing (1), never invalid input (2)")
		require.Contains(t, stderr, "chaosloop itself failed: panic:")
		require.Contains(t, stderr, "please report it")
		crash, err := filepath.Glob(filepath.Join(os.TempDir(), "chaosloop-crash-*.txt"))
		require.NoError(t, err)
		require.NotEmpty(t, crash, stderr)
		b, err := os.ReadFile(crash[len(crash)-1])
		require.NoError(t, err)
		require.Contains(t, string(b), "goroutine", "the stack trace is in the crash file")
		require.Contains(t, string(b), name)
		for _, f := range crash {
			require.NoError(t, os.Remove(f))
		}
	}
}

func TestInterruptedBusyCommandEndsAtOnce(t *testing.T) {
	busy := &cobra.Command{Use: "busy", RunE: func(c *cobra.Command, _ []string) error {
		return cli.Interruptible(c.Context(), func() error {
			for { // a loop that never looks at its context
				time.Sleep(time.Millisecond)
			}
		})
	}}
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(&cli.SignalError{Signal: syscall.SIGTERM}) })
	start := time.Now()
	code, stderr := execute(ctx, []*cobra.Command{busy}, "busy")
	require.Less(t, time.Since(start), time.Second)
	require.Equal(t, 128+int(syscall.SIGTERM), code)
	require.Contains(t, stderr, "interrupted by SIGTERM")
}

// TestSIGTERMEndsValidate: a validate waiting on standard input (a pipe
// nobody writes to) ends within a second of SIGTERM, and a second SIGINT
// is not needed.
func TestSIGTERMEndsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(os.Args[0], "validate", "-")
		cmd.Env = append(os.Environ(), "CHAOSLOOP_TEST_AS_MAIN=1")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(sig))
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("validate still running 2 s after %v", sig)
		}
		require.Less(t, time.Since(start), time.Second)
		require.Equal(t, 128+int(sig), cmd.ProcessState.ExitCode(), stderr.String())
		require.Contains(t, stderr.String(), "interrupted")
		stdin.Close()
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	var missing []string
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden {
				continue
			}
			if strings.TrimSpace(sub.Example) == "" {
				missing = append(missing, sub.CommandPath())
			}
			_, _, err := sub.Find(nil)
			require.NoError(t, err)
			walk(sub)
		}
	}
	cmd := root.NewCommand(cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	walk(cmd)
	require.Empty(t, missing, "commands without an Example")
	// And --help shows it.
	for _, name := range []string{"heal", "replay", "init", "version"} {
		code, out, _ := run(name, "--help")
		require.Equal(t, 0, code)
		require.Contains(t, out, "Examples:", name)
	}
}

var perRack = regexp.MustCompile(`--nodes-per-rack (\d+)`)

// TestInitValidates: every starter scenario init writes passes validate
// read from standard input (exit 0: warnings at most).
func TestInitValidates(t *testing.T) {
	poolSets := []string{"", "all", "KAFKA-DATA-PLANE", "k3s-control-plane,kafka-control-plane,kafka-data-plane,rdbms-api-gateway-live,cache-fin-live,doc-bulk-live"}
	n := 0
	for sites := 1; sites <= 4; sites++ {
		for racks := 1; racks <= 3; racks++ {
			for _, pools := range poolSets {
				for _, extra := range []int{0, 3} {
					args := []string{"init", "--name", fmt.Sprintf("s%d-r%d", sites, racks), "--sites", fmt.Sprint(sites), "--racks-per-site", fmt.Sprint(racks)}
					if pools != "" {
						args = append(args, "--pools", pools)
					}
					if extra > 0 {
						// More nodes than the pools need: they join the pools.
						code, out, stderr := run(args...)
						require.Equal(t, 0, code, stderr)
						m := perRack.FindStringSubmatch(out)
						require.NotNil(t, m, "the header names the layout's flags")
						n, _ := strconv.Atoi(m[1])
						args = append(args, "--nodes-per-rack", fmt.Sprint(n+extra))
					}
					code, scenario, stderr := run(args...)
					require.Equal(t, 0, code, "%v: %s", args, stderr)
					code, out, stderr := runIn(scenario, "validate", "-")
					require.Equal(t, 0, code, "%v:\n%s%s", args, out, stderr)
					require.Contains(t, out, "<stdin>: valid; 0 error(s)")
					n++
				}
			}
		}
	}
	t.Logf("%d starter scenarios validated", n)
	code, _, stderr := run("init", "--sites", "0")
	require.Equal(t, 2, code, stderr)
	code, _, stderr = run("init", "--pools", "NOPE")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no pool NOPE")
	code, _, stderr = run("init", "--nodes-per-rack", "1")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "need at least 12")
}

func TestValidateSeveralFilesAndStdin(t *testing.T) {
	code, out, stderr := run("validate", ex+"quickstart.yaml", ex+"testdata/invalid-references.yaml", "-f", ex+"two-site.yaml", "missing.yaml")
	require.Equal(t, 2, code, "one invalid file makes the whole exit 2")
	require.Contains(t, out, "quickstart.yaml: valid")
	require.Contains(t, out, "two-site.yaml: valid")
	require.Contains(t, stderr, "invalid-references.yaml: invalid")
	require.Contains(t, stderr, "missing.yaml: invalid", "an unreadable file is reported, the others still checked")

	code, out, _ = run("validate", "-o", "json", ex+"quickstart.yaml", ex+"two-site.yaml")
	require.Equal(t, 0, code)
	var results []struct {
		File  string
		Valid bool
	}
	require.NoError(t, json.Unmarshal([]byte(out), &results))
	require.Len(t, results, 2)
	require.True(t, results[1].Valid)

	src, err := os.ReadFile(ex + "quickstart.yaml")
	require.NoError(t, err)
	code, out, _ = runIn(string(src), "validate", "-o", "yaml", "-")
	require.Equal(t, 0, code)
	var res struct {
		File  string `yaml:"file"`
		Valid bool   `yaml:"valid"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &res))
	require.Equal(t, cli.StdinName, res.File)
	require.True(t, res.Valid)

	code, _, stderr = runIn("name: [", "validate", "-")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "<stdin>:1:")

	code, _, stderr = run("validate", "-", "-f", "-")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "only once")
	code, _, _ = run("validate")
	require.Equal(t, 2, code, "no file is a usage error")
	code, _, stderr = run("validate", "-o", "xml", ex+"quickstart.yaml")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-o must be one of")
}

func TestOutputFormats(t *testing.T) {
	code, out, _ := run("analyze", ex+"quickstart.yaml", "-o", "yaml")
	require.Equal(t, 0, code)
	var a struct {
		Scenario string `yaml:"scenario"`
		Summary  struct {
			SurvivesAll bool `yaml:"survivesAll"`
		} `yaml:"summary"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &a))
	require.Equal(t, "quickstart", a.Scenario)
	require.True(t, a.Summary.SurvivesAll)

	code, out, _ = run("analyze", "-f", ex+"quickstart.yaml", "--format", "json")
	require.Equal(t, 0, code, "--format stays as -o's older name")
	require.True(t, json.Valid([]byte(out)))

	code, out, _ = run("version", "-o", "json")
	require.Equal(t, 0, code)
	var v struct {
		Version, GoVersion string
		Engines            []struct {
			Engine string
			Pins   []string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.NotEmpty(t, v.Version)
	require.True(t, strings.HasPrefix(v.GoVersion, "go1."))
	pins := map[string]string{}
	for _, e := range v.Engines {
		pins[e.Engine] += strings.Join(e.Pins, " ") + " "
	}
	require.Contains(t, pins["etcd"], "etcd-server=3.4.23")
	require.Contains(t, pins["kafka"], "org.apache.kafka:kafka_2.13:4.1.1")
	require.Contains(t, pins["ferretdb-patroni"], "github.com/FerretDB/FerretDB@v1.24.2")

	code, out, _ = run("version", "-o", "wide")
	require.Equal(t, 0, code)
	require.Contains(t, out, "PINS")
	require.Contains(t, out, "zookeeper=3.8.0")
	code, out, _ = run("--version")
	require.Equal(t, 0, code)
	require.Contains(t, out, "go1.")
}

func TestLabCommandsTakeAFile(t *testing.T) {
	// An empty state directory: the file must be resolved to its lab's
	// name (quickstart), which is then not found (or, without root, the
	// lab commands stop before looking).
	dir := t.TempDir()
	for _, args := range [][]string{
		{"down", ex + "quickstart.yaml"},
		{"down", "quickstart"},
		{"status", "-f", ex + "quickstart.yaml"},
		{"heal", ex + "quickstart.yaml"},
		{"heal", "--lab", ex + "quickstart.yaml", "isolate", "site/dc3"},
		{"fault", ex + "quickstart.yaml", "isolate", "site/dc3"},
	} {
		code, _, stderr := run(append(args, "--state-dir", dir)...)
		require.Equal(t, 1, code, "%v: %s", args, stderr)
		if os.Geteuid() == 0 {
			require.Contains(t, stderr, `no lab named "quickstart"`, args)
		} else {
			require.Contains(t, stderr, "needs root", args)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	code, _, stderr := run("down", ex+"quickstart.yaml", "-f", ex+"quickstart.yaml", "--state-dir", dir)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "named twice")
	code, _, stderr = run("status", "../../etc", "--state-dir", dir)
	require.Equal(t, 2, code, "a path is a file, never a lab directory outside the state dir")
	require.Contains(t, stderr, "neither a lab name nor a scenario file")
}

func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "quickstart"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "three-site"), 0o755))
	complete := func(args ...string) string {
		code, out, stderr := run(append([]string{"__complete"}, args...)...)
		require.Equal(t, 0, code, stderr)
		return out
	}
	out := complete("status", "--state-dir", dir, "qu")
	require.Contains(t, out, "quickstart\n")
	require.NotContains(t, out, "three-site")
	out = complete("down", "--state-dir", dir, "")
	require.Contains(t, out, "three-site\n")
	out = complete("validate", "-o", "")
	for _, f := range []string{"text", "wide", "json", "yaml"} {
		require.Contains(t, out, f+"\n")
	}
	out = complete("up", "--on", "")
	require.Contains(t, out, "local\n")
	out = complete("validate", ex+"quick")
	require.Contains(t, out, ex+"quickstart.yaml\n")
	out = complete("init", "--pools", "KAFKA-D")
	require.Contains(t, out, "KAFKA-DATA-PLANE\n")
	out = complete("fault", "--state-dir", dir, "quickstart", "")
	require.Contains(t, out, "power-off\n")
}
