package scenarios_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
	"github.com/chaosloop/chaosloop/topology/lint"
)

// Each input's budget: what `chaosloop validate` and `analyze` may spend
// on a file, measured as process CPU time (the fuzzing machine may be
// busy) and bytes allocated.
const (
	fuzzCPUBudget   = time.Second
	fuzzAllocBudget = 100 << 20
)

// FuzzDecode: no input may panic, or exceed the budget in, decoding,
// defaults, validation, model building, lint or depth-1 analysis; a
// scenario that validates must build, and no message carries a raw
// control character.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	examples, _ := filepath.Glob("*.yaml")
	for _, p := range append(seeds, examples...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: x\nsites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [{name: n, pools: [P]}]}]}]\nservices: [{name: k, kind: kafka, pool: P, replicas: 1}]\n"))
	f.Add([]byte("name: x\nsites: &s [{name: a, racks: &r [{name: r, power: [p], switches: [s], nodes: &n [{name: n, pools: [P]}, *n]}, *r]}, *s]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cpu := cpuTime()
		pipeline(t, data)
		used := cpuTime() - cpu
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > fuzzAllocBudget {
			t.Fatalf("allocated %d MB (budget %d MB)", alloc>>20, fuzzAllocBudget>>20)
		}
		if used > fuzzCPUBudget {
			t.Fatalf("took %v of CPU (budget %v)", used, fuzzCPUBudget)
		}
	})
}

// pipeline is what validate and analyze do with a file.
func pipeline(t *testing.T, data []byte) {
	s, err := scenarios.Decode("fuzz.yaml", data)
	if s == nil {
		if err == nil {
			t.Fatal("nil scenario without an error")
		}
		checkMessages(t, err)
		return
	}
	d := s.WithDefaults()
	verr := d.Validate()
	checkMessages(t, err)
	checkMessages(t, verr)
	if verr != nil || err != nil {
		return
	}
	topo, err := topology.Build(d)
	if err != nil {
		// Until scenarios bounds partitions (the field rules change),
		// topology's allocation guard refuses what validation lets by.
		if strings.Contains(err.Error(), "partitions: at most") {
			return
		}
		t.Fatalf("valid scenario failed to build: %v", err)
	}
	lint.Check(topo)
	topo.Analyze(1)
}

// checkMessages: every problem is positioned, and printable as it is.
func checkMessages(t *testing.T, err error) {
	if err == nil {
		return
	}
	var errs scenarios.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("not an Errors list: %v", err)
	}
	for _, e := range errs {
		if e.Line < 1 || e.Column < 1 {
			t.Fatalf("unpositioned problem: %v", e)
		}
		for _, r := range e.Error() {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("raw control character %q in message %q", r, e.Error())
			}
		}
	}
	if len(errs) > scenarios.MaxErrors+1 {
		t.Fatalf("%d problems listed, at most %d and a count", len(errs), scenarios.MaxErrors)
	}
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
