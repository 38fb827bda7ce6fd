package status

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/lab"
)

func TestPrintWide(t *testing.T) {
	st := &lab.Status{Name: "quickstart", Hosts: 3, Dir: "/state/quickstart", Services: []lab.ServiceStatus{{
		Name: "kafka", Kind: "kafka", Engine: "kafka", Version: "4.1.1", Writable: true, Healthy: false, Error: "broker 2 timed out",
		Members: []lab.Member{
			{Index: 0, Name: "kafka-0", Node: "dc1-kafka", Addr: "198.18.0.2", Role: "leader", Up: true, Healthy: true},
			{Index: 1, Name: "kafka-1", Node: "dc2-kafka", Addr: "198.18.0.3", Up: false, Detail: "not running"},
		},
	}}}
	var narrow, wide bytes.Buffer
	Print(&narrow, st, false)
	Print(&wide, st, true)
	n, w := narrow.String(), wide.String()
	require.Contains(t, n, "SERVICE  KIND   MEMBER  NODE       ROLE    UP   HEALTHY  DETAIL\n")
	require.NotContains(t, n, "198.18.0.2")
	require.Regexp(t, `kafka +kafka +kafka 4\.1\.1 +yes +0 +kafka-0 +dc1-kafka +198\.18\.0\.2 +leader +yes +yes`, w)
	require.Regexp(t, `1 +kafka-1 +dc2-kafka +198\.18\.0\.3 +- +NO +NO +not running`, w)
	for _, out := range []string{n, w} {
		require.True(t, strings.HasSuffix(out, "error: kafka: broker 2 timed out\n"), out)
	}
}
