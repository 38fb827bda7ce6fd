package root_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
	"github.com/chaosloop/chaosloop/topology"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

const ex = "../../../../scenarios/"

func TestAnalyzeJSONContract(t *testing.T) {
	code, out, stderr := run("analyze", ex+"three-site.yaml", "--depth", "2", "--format", "json")
	require.Equal(t, 1, code, stderr) // wso2-db (async) does not survive dc1's loss
	var a topology.AnalysisJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&a))
	require.Equal(t, "three-site", a.Scenario)
	require.Equal(t, 2, a.Depth)
	require.Equal(t, len(a.Failures), a.Summary.Failures)
	singles := 0
	for i, f := range a.Failures {
		require.True(t, slices.IsSorted(f.Domains), "domains sorted: %v", f.Domains)
		require.NotNil(t, f.NodesDown)
		require.Len(t, f.Services, 10)
		if len(f.Domains) == 1 {
			singles++
		}
		if i > 0 {
			require.Negative(t, slices.Compare(a.Failures[i-1].Domains, f.Domains), "failures sorted by domains")
		}
	}
	require.Equal(t, singles*(singles+1)/2, len(a.Failures), "every single and every pair")
	require.Equal(t, topology.Down, a.Summary.Worst, "two sites lost")
	require.False(t, a.Summary.SurvivesAll)
	// The raw keys are exactly the contract's.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	svc := raw["failures"].([]any)[0].(map[string]any)["services"].([]any)[0].(map[string]any)
	keys := make([]string, 0, len(svc))
	for k := range svc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"acknowledgedLossPossible", "members", "membersUp", "service", "verdict"}, keys)
}

func TestAnalyzeSiteLoss(t *testing.T) {
	code, out, _ := run("analyze", ex+"three-site.yaml", "-o", "json")
	require.Equal(t, 1, code)
	var a topology.AnalysisJSON
	require.NoError(t, json.Unmarshal([]byte(out), &a))
	for _, f := range a.Failures {
		if f.Domains[0] != "site/dc1" {
			continue
		}
		require.Equal(t, []string{"dc1-api", "dc1-app", "dc1-cp", "dc1-data", "dc1-gw-db", "dc1-kafka", "dc1-ledger-db", "dc1-zk"}, f.NodesDown)
		for _, s := range f.Services {
			switch s.Service {
			case "wso2-db":
				require.Equal(t, topology.ReadOnly, s.Verdict)
				require.True(t, s.AcknowledgedLossPossible)
			case "auth-redis":
				require.Equal(t, topology.Degraded, s.Verdict, "sentinel majority fails over")
				require.True(t, s.AcknowledgedLossPossible)
			default:
				require.Equal(t, topology.Degraded, s.Verdict, s.Service)
				require.Equal(t, 2, s.MembersUp)
			}
		}
		return
	}
	t.Fatal("no site/dc1 failure")
}

func TestAnalyzeExitCodes(t *testing.T) {
	code, _, _ := run("analyze", ex+"quickstart.yaml")
	require.Equal(t, 0, code, "quickstart survives every single failure")
	code, out, _ := run("analyze", ex+"two-site.yaml")
	require.Equal(t, 1, code)
	require.Contains(t, out, "site/primary")
	code, _, stderr := run("analyze", "testdata-does-not-exist.yaml")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no such file")
	code, _, stderr = run("analyze", ex+"testdata/invalid-faults.yaml")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "invalid-faults.yaml:14:19:")
	code, _, stderr = run("analyze", ex+"quickstart.yaml", "--depth", "3")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--depth")
	code, _, _ = run("analyze")
	require.Equal(t, 2, code)
	code, _, _ = run("analyze", ex+"quickstart.yaml", "--bogus")
	require.Equal(t, 2, code)
	code, _, _ = run("frobnicate")
	require.Equal(t, 2, code)
}

func TestValidate(t *testing.T) {
	code, out, _ := run("validate", ex+"quickstart.yaml")
	require.Equal(t, 0, code, out)
	code, out, _ = run("validate", ex+"two-site.yaml", "--format", "json")
	require.Equal(t, 0, code, "warnings only")
	var res struct {
		Valid    bool
		Findings []struct{ Rule, Severity string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.True(t, res.Valid)
	require.NotEmpty(t, res.Findings)
	code, _, stderr := run("validate", ex+"testdata/invalid-references.yaml")
	require.Equal(t, 2, code)
	require.Equal(t, 8, strings.Count(stderr, "invalid-references.yaml:"), "every problem at once, plus the summary line")
}

// TestValidateCappedProblems: past scenarios.MaxErrors problems the
// summary says how many were shown and how many more were found, and the
// JSON lists the shown ones and counts the rest.
func TestValidateCappedProblems(t *testing.T) {
	src := "name: capped\n" + strings.Repeat("name: again\n", 60)
	code, _, stderr := runIn(src, "validate", "-")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "<stdin>:51:1: and 11 more problems, not listed\n")
	require.True(t, strings.HasSuffix(stderr, "<stdin>: invalid: 50 problems shown, 11 more found but not listed\n"), stderr)
	code, out, _ := runIn(src, "validate", "-o", "json", "-")
	require.Equal(t, 2, code)
	var res struct {
		Errors   []struct{ Message string }
		Unlisted int
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Errors, 50)
	require.Equal(t, 11, res.Unlisted)
	_, _, stderr = runIn("name: capped\n", "validate", "-")
	require.Contains(t, stderr, "<stdin>: invalid: 1 problem\n")
}

func TestValidateErrorFindingExits1(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/merge.yaml"
	require.NoError(t, writeFile(f, `name: merge
sites: [{name: a, racks: [{name: r, power: [p], switches: [s], nodes: [
  {name: n1, pools: [KAFKA-DATA-PLANE, CORE-HANDLERS]}, {name: n2, pools: [KAFKA-DATA-PLANE]}, {name: n3, pools: [KAFKA-DATA-PLANE]}]}]}]
`))
	code, out, _ := run("validate", f)
	require.Equal(t, 1, code)
	require.Contains(t, out, "merge.yaml:3:21: error:")
	require.Contains(t, out, "[pool-merge]")
}

func TestSchema(t *testing.T) {
	code, out, _ := run("schema")
	require.Equal(t, 0, code)
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	props := s["properties"].(map[string]any)
	for _, k := range []string{"name", "sites", "links", "services", "load", "faults", "expect"} {
		require.Contains(t, props, k)
	}
	require.Equal(t, false, s["additionalProperties"])
}
