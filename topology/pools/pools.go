// Package pools is the seed document's node pool table as data: each pool's
// minimum ("Initial") and upgrade sizes, its services, the pools that must
// never be merged with others, and the sanctioned combined pools.
package pools

import (
	"bytes"
	_ "embed"
	"fmt"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

//go:embed pools.yaml
var tableYAML []byte

// Size is a row of the table for one pool.
type Size struct {
	Nodes  int     `yaml:"nodes"`
	CPU    float64 `yaml:"cpu"`
	Memory string  `yaml:"memory"`
	Disk   string  `yaml:"disk"`
}

// MemoryBytes and DiskBytes read the seed's "GB" as 10^9 bytes.
func (s Size) MemoryBytes() int64 { return gb(s.Memory) }
func (s Size) DiskBytes() int64   { return gb(s.Disk) }

func gb(s string) int64 {
	if s == "" {
		return 0
	}
	q := resource.MustParse(string(bytes.TrimSuffix([]byte(s), []byte("B"))))
	return q.Value()
}

// Pool is one node pool.
type Pool struct {
	Name        string   `yaml:"name"`
	Kind        string   `yaml:"kind"`
	Replication string   `yaml:"replication"`
	Initial     Size     `yaml:"initial"`
	Upgrade     *Size    `yaml:"upgrade"`
	Services    []string `yaml:"services"`
}

// Combined is one of the seed's suggested workload combinations.
type Combined struct {
	Name  string   `yaml:"name"`
	Pools []string `yaml:"pools"`
}

// Conditional is a pool never merged when a feature is used frequently.
type Conditional struct {
	Pool    string `yaml:"pool"`
	Feature string `yaml:"feature"`
}

// Table is the whole seed table.
type Table struct {
	Pools              []Pool        `yaml:"pools"`
	NeverMerge         []string      `yaml:"neverMerge"`
	NeverMergeWhenUsed []Conditional `yaml:"neverMergeWhenUsed"`
	Combined           []Combined    `yaml:"combined"`
}

// Seed returns the seed's table, parsed once; the embedded data is part of
// the program, so a parse error is a bug.
var Seed = sync.OnceValue(func() *Table {
	t := &Table{}
	dec := yaml.NewDecoder(bytes.NewReader(tableYAML))
	dec.KnownFields(true)
	if err := dec.Decode(t); err != nil {
		panic(fmt.Sprintf("pools: embedded table: %v", err))
	}
	return t
})

// Pool returns the named pool, or nil when the seed has none by that name.
func (t *Table) Pool(name string) *Pool {
	for i := range t.Pools {
		if t.Pools[i].Name == name {
			return &t.Pools[i]
		}
	}
	return nil
}

// IsNeverMerge reports whether a pool must keep its nodes to itself.
func (t *Table) IsNeverMerge(name string) bool { return slices.Contains(t.NeverMerge, name) }

// CombinedHolding returns the combined pool holding every one of pools, or
// nil when no sanctioned combination covers them all.
func (t *Table) CombinedHolding(pools []string) *Combined {
	for i := range t.Combined {
		c := &t.Combined[i]
		ok := true
		for _, p := range pools {
			if !slices.Contains(c.Pools, p) {
				ok = false
				break
			}
		}
		if ok {
			return c
		}
	}
	return nil
}
