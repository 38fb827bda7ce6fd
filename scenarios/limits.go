package scenarios

import "strings"

// Hard limits on what a scenario file may hold. They are far above any real
// estate (a scenario is a few KB and under 10 levels deep; the largest real
// estates have a few thousand nodes) and keep a hostile or broken file from
// exhausting memory or time: each is checked before the work it bounds, and
// crossing one is a positioned error like any other.
const (
	// MaxFileBytes is the largest scenario file read (4 MiB holds 20,000
	// fully described nodes).
	MaxFileBytes = 4 << 20
	// MaxDepth is the deepest nesting of lists and mappings, checked on the
	// raw bytes before any YAML parser sees them.
	MaxDepth = 64
	// MaxValues is the most YAML values (scalars, lists, mappings) in a file,
	// also checked before parsing: yaml.v3 keeps about 165 bytes of a
	// parsed value (a 152-byte yaml.Node and its place in its parent), so a
	// file at the limit takes 66 MB once parsed (README, "Hostile input").
	MaxValues = 400_000
	// MaxAliasValues is the most values decoded through aliases, counted
	// over every expansion (an alias to an alias counts both): it stops
	// "billion laughs" files.
	MaxAliasValues = 100_000
	// MaxErrors is how many problems are reported; the rest are counted in a
	// last "and N more" line.
	MaxErrors = 50

	MaxSites    = 100
	MaxRacks    = 10_000
	MaxNodes    = 50_000
	MaxLinks    = 5_000 // every pair of MaxSites sites
	MaxServices = 1_000
	MaxFaults   = 1_000
)

// maxStoredErrors bounds the problems kept in memory while decoding and
// validating; beyond it they are only counted.
const maxStoredErrors = 1_000

// costlyQuantity reports a size string that resource.ParseQuantity would
// spend minutes or gigabytes on (it rounds "1e-1000000000" through a
// billion-digit number): longer than any real size, or with an exponent
// beyond ±99.
func costlyQuantity(s string) bool {
	if len(s) > 64 {
		return true
	}
	i := strings.LastIndexAny(s, "eE")
	if i < 0 || i == len(s)-1 {
		return false
	}
	exp := strings.TrimLeft(s[i+1:], "+-")
	return len(exp) > 2 && strings.Trim(exp, "0123456789") == ""
}
