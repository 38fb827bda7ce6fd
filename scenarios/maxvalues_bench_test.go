package scenarios_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chaosloop/chaosloop/scenarios"
)

// maxValuesFile is the hostile input "values-just-under-limit": the most
// values a file may hold, all parsed, then refused.
func maxValuesFile() []byte {
	var b strings.Builder
	b.WriteString("name: x\ndescription:\n")
	for i := range scenarios.MaxValues/2 - 100 {
		fmt.Fprintf(&b, "  k%d:\n", i)
	}
	return []byte(b.String())
}

// BenchmarkParseMaxValues: what parsing a file at the value limit
// allocates (-memprofile shows yaml.v3's Node tree; README, "Hostile
// input").
func BenchmarkParseMaxValues(b *testing.B) {
	data := maxValuesFile()
	b.ReportAllocs()
	for b.Loop() {
		_, err := scenarios.ParseBytes(context.Background(), "max.yaml", data)
		if err == nil {
			b.Fatal("accepted")
		}
	}
}
