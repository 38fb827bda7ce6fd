package run

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
)

// TestProgressShowsLabSteps: a run's log off a terminal (make demo in CI)
// shows each step of the lab coming up between the phases, not four
// silent minutes.
func TestProgressShowsLabSteps(t *testing.T) {
	var w bytes.Buffer
	p := newProgress(&w)
	p.Phase("up", "standing the lab up (or reusing it)")
	p.Lab(lab.Progress{Stage: "installing", Detail: "network tools"})
	p.Lab(lab.Progress{Service: "bulk-db", Stage: "installing", Detail: "go build FerretDB v1.24.2 (1-3 min on 2 cores)"})
	p.Lab(lab.Progress{Stage: "done", Detail: "network of 15 hosts up"})
	p.Lab(lab.Progress{Service: "bulk-db", Stage: "starting", Detail: "ferretdb-patroni ×3"})
	p.Lab(lab.Progress{Service: "bulk-db", Stage: "healthy"})
	p.Phase("handlers", "starting the transfer handlers")
	p.Close()
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	require.Len(t, lines, 7, w.String())
	for i, want := range []string{"up: standing", "lab", "go build FerretDB", "network of 15 hosts up", "starting: ferretdb-patroni ×3", "bulk-db                  healthy", "handlers: starting"} {
		require.Contains(t, lines[i], want)
		require.Regexp(t, `^\[ *\d+\.\ds\] `, lines[i])
	}
}
