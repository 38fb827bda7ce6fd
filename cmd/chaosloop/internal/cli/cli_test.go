package cli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/lab"
)

// syncBuffer is written by Steps' heartbeat goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var stepLine = regexp.MustCompile(`^\[ *\d+\.\ds\] \S+ +\S`)

// TestStepsPlainLines: off a terminal (a CI log), every step change is a
// timestamped line, and a step quiet for a heartbeat gets a "still" line
// until it ends.
func TestStepsPlainLines(t *testing.T) {
	var w syncBuffer
	s := cli.NewStepsFrom(&w, time.Now(), 80*time.Millisecond)
	s.Lab(lab.Progress{Stage: "installing", Detail: "network tools"})
	s.Lab(lab.Progress{Service: "bulk-db", Stage: "installing", Detail: "ferretdb-patroni"})
	// An engine's install reports its own steps through the context.
	ctx := install.WithSteps(context.Background(), func(d string) {
		s.Lab(lab.Progress{Service: "bulk-db", Stage: "installing", Detail: d})
	})
	install.Step(ctx, "go build FerretDB v1.24.2")
	s.Lab(lab.Progress{Stage: "network", Detail: "15 hosts"})
	s.Lab(lab.Progress{Service: "kafka", Stage: "failed", Err: errors.New("no broker")})
	time.Sleep(300 * time.Millisecond) // bulk-db and lab stay quiet
	s.Lab(lab.Progress{Service: "bulk-db", Stage: "healthy"})
	s.Lab(lab.Progress{Stage: "done"})
	stillBefore := strings.Count(w.String(), "still")
	time.Sleep(200 * time.Millisecond)
	s.Close()
	out := w.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		require.Regexp(t, stepLine, l)
	}
	require.Contains(t, lines[0], "lab")
	require.Contains(t, lines[0], "installing: network tools")
	require.Contains(t, out, "bulk-db                  installing: go build FerretDB v1.24.2")
	require.Contains(t, out, "kafka                    failed: no broker")
	require.Regexp(t, `bulk-db +still installing: go build FerretDB v1.24.2 \(for \d+s\)`, out)
	require.Regexp(t, `lab +still network: 15 hosts`, out)
	require.NotContains(t, out, "kafka                    still", "a failed step is over")
	require.Equal(t, stillBefore, strings.Count(out, "still"), "an ended step gets no heartbeat")
	// Close twice is harmless (run closes on each phase and at the end).
	s.Close()
}

func TestJSONToYAML(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, cli.EncodeYAML(&b, map[string]any{"a": "yes", "b": []int{1, 2}, "c": "1.0", "d": map[string]string{"e": "f: g"}, "n": nil}))
	require.Equal(t, "a: \"yes\"\nb:\n  - 1\n  - 2\nc: \"1.0\"\nd:\n  e: 'f: g'\n\"n\": null\n", b.String())
}

func TestInputsNames(t *testing.T) {
	var in cli.Inputs
	_, err := in.Names(nil, 1)
	require.Equal(t, cli.ExitInvalid, cli.CodeOf(err))
	names, err := in.Names([]string{"a.yaml", "-"}, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"a.yaml", "-"}, names)
	_, err = in.Names([]string{"a.yaml", "b.yaml"}, 1)
	require.ErrorContains(t, err, "takes 1 scenario file")
}

func TestResolveLab(t *testing.T) {
	root := t.TempDir()
	p := local.NewProvider(local.Options{Root: root})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "quickstart"), 0o755))
	dir := t.TempDir()
	file := filepath.Join(dir, "my.yaml")
	require.NoError(t, os.WriteFile(file, []byte("name: my-lab\nsites: {bad: 1}\n"), 0o644))
	env := &cli.Env{Streams: cli.Streams{In: strings.NewReader("name: from-stdin\n")}}

	for ref, want := range map[string]string{
		"quickstart": "quickstart",
		"other":      "other", // a name, even of no lab: the command says so
		file:         "my-lab",
		"-":          "from-stdin",
		"":           "quickstart", // the only lab
	} {
		got, err := cli.ResolveLab(t.Context(), env, p, ref)
		require.NoError(t, err, ref)
		require.Equal(t, want, got, ref)
	}
	// A name-shaped ref that is no lab but a file in the working dir.
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("mylab", []byte("name: from-file\n"), 0o644))
	got, err := cli.ResolveLab(t.Context(), env, p, "mylab")
	require.NoError(t, err)
	require.Equal(t, "from-file", got)

	for _, ref := range []string{"../..", "no/such.yaml", "Quickstart"} {
		_, err := cli.ResolveLab(t.Context(), env, p, ref)
		require.Equal(t, cli.ExitInvalid, cli.CodeOf(err), ref)
		require.ErrorContains(t, err, "neither a lab name nor a scenario file", ref)
	}
	require.NoError(t, os.WriteFile("noname.yaml", []byte("sites: []\n"), 0o644))
	_, err = cli.ResolveLab(t.Context(), env, p, "noname.yaml")
	require.ErrorContains(t, err, "no valid name:")

	require.NoError(t, os.MkdirAll(filepath.Join(root, "three-site"), 0o755))
	_, err = cli.ResolveLab(t.Context(), env, p, "")
	require.ErrorContains(t, err, "several labs are up (quickstart, three-site)")
}

func TestInterruptibleKeepsResult(t *testing.T) {
	err := cli.Interruptible(context.Background(), func() error { return cli.Exit(3) })
	require.Equal(t, 3, cli.CodeOf(err))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = cli.Interruptible(ctx, func() error { select {} })
	require.ErrorIs(t, err, context.Canceled)
}
