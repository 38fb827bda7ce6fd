package scenarios_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// FuzzDecode: no input may panic the decoder, defaults, validation, model
// building or analysis; a scenario that validates must build.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := scenarios.Decode("fuzz.yaml", data)
		if s == nil {
			if err == nil {
				t.Fatal("nil scenario without an error")
			}
			return
		}
		d := s.WithDefaults()
		verr := d.Validate()
		for _, e := range []error{err, verr} {
			if e == nil {
				continue
			}
			for _, r := range e.Error() {
				// Names are user input: messages must quote them.
				if r != '\n' && (r < 0x20 || r == 0x7f) {
					t.Fatalf("raw control character %q in message %q", r, e.Error())
				}
			}
		}
		if verr != nil || err != nil {
			return
		}
		topo, err := topology.Build(d)
		if err != nil {
			t.Fatalf("valid scenario failed to build: %v", err)
		}
		if len(topo.Nodes) <= 40 {
			topo.Analyze(1)
		}
	})
}
