package render_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/reports/checks"
	"github.com/chaosloop/chaosloop/reports/internal/synth"
	"github.com/chaosloop/chaosloop/reports/render"
	"github.com/chaosloop/chaosloop/scenarios"
)

func report(t *testing.T, cfg synth.Config) *checks.Report {
	t.Helper()
	sc, err := scenarios.Parse("../../scenarios/quickstart.yaml")
	require.NoError(t, err)
	r := 10.0
	sc.Load.Rate = &r
	run, err := synth.Generate(sc, cfg)
	require.NoError(t, err)
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final, Seed: 42}, checks.Options{})
	require.NoError(t, err)
	return rep
}

// junit mirrors what CI servers read.
type junit struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Skipped  int `xml:"skipped,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Tests int    `xml:"tests,attr"`
		Cases []struct {
			Name      string    `xml:"name,attr"`
			ClassName string    `xml:"classname,attr"`
			Failure   *struct{} `xml:"failure"`
			Error     *struct{} `xml:"error"`
			Skipped   *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, rep *checks.Report) junit {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, render.JUnit(&b, rep))
	var j junit
	require.NoError(t, xml.Unmarshal(b.Bytes(), &j), b.String())
	return j
}

func TestJSONRoundTrip(t *testing.T) {
	rep := report(t, synth.Config{})
	var b bytes.Buffer
	require.NoError(t, render.JSON(&b, rep))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &raw))
	require.Equal(t, 2.0, raw["version"])
	require.Equal(t, "quickstart", raw["scenario"])
	require.Equal(t, 42.0, raw["seed"])
	require.Equal(t, "PASS", raw["verdict"])
	var back checks.Report
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Len(t, back.Checks, 8)
	require.Len(t, back.Faults, 2)
	require.Equal(t, rep.Faults[0].InjectAt, back.Faults[0].InjectAt)
	require.Equal(t, len(rep.Series.P99), len(back.Series.P99))
	require.Contains(t, b.String(), `"p99": [`)
	require.Contains(t, b.String(), "null", "buckets without latency are null, not NaN")
}

func TestJUnitPassing(t *testing.T) {
	j := parseJUnit(t, report(t, synth.Config{}))
	require.Len(t, j.Suites, 3, "the run and one suite per fault")
	require.Equal(t, 24, j.Tests, "8 checks × (run + 2 faults)")
	require.Zero(t, j.Failures+j.Errors+j.Skipped)
	require.Equal(t, "quickstart: fault 1 power-off rack/dc1/r1", j.Suites[1].Name)
	require.Equal(t, "acknowledged-transfers", j.Suites[1].Cases[0].Name)
	require.Equal(t, "chaosloop.quickstart.fault1", j.Suites[1].Cases[0].ClassName)
}

func TestJUnitFailureAndUnknown(t *testing.T) {
	rep := report(t, synth.Config{Vacuous: map[int]bool{1: true}})
	j := parseJUnit(t, rep)
	require.Equal(t, 2, j.Failures, "fault-effect for the run and for fault 2")
	for _, c := range j.Suites[2].Cases {
		require.Equal(t, c.Name == checks.CheckFaultEffect, c.Failure != nil, c.Name)
	}
	// UNKNOWN is an error, never a pass.
	rep.Checks[0].Status = checks.Unknown
	j = parseJUnit(t, rep)
	require.Equal(t, 1, j.Errors)
	require.NotNil(t, j.Suites[0].Cases[0].Error)
}

func TestHTMLIsSelfContainedWithPlots(t *testing.T) {
	rep := report(t, synth.Config{Collapse: map[int]bool{1: true}})
	var b bytes.Buffer
	require.NoError(t, render.HTML(&b, rep))
	h := b.String()
	require.Contains(t, h, `<div class="verdict fail" id="scorecard">`)
	require.Contains(t, h, "LIVENESS VIOLATED")
	require.Contains(t, h, "throughput too low")
	for _, id := range []string{"plot-throughput", "plot-latency", "plot-quorum"} {
		i := strings.Index(h, `id="`+id+`"`)
		require.Positive(t, i, id)
		require.True(t, strings.HasPrefix(h[i+len(id)+5:], "><svg "), id)
	}
	require.Equal(t, 3, strings.Count(h, "<svg "))
	// Fault windows shaded on each of the three plots.
	require.Equal(t, 6, strings.Count(h, `class="fault"`))
	require.Contains(t, h, `data-name="acknowledged"`)
	require.Contains(t, h, `data-name="p99"`)
	require.Contains(t, h, `class="observed"`)
	require.Contains(t, h, `class="predicted"`)
	// No external asset, no script.
	require.NotContains(t, h, "<script")
	require.NotRegexp(t, regexp.MustCompile(`(src|href)=`), h)
	require.Equal(t, 3, strings.Count(h, "http"), "only the SVG namespace")
}

func TestTextScorecard(t *testing.T) {
	rep := report(t, synth.Config{RedisLoss: map[int]int{1: 2}})
	var b bytes.Buffer
	require.NoError(t, render.Text(&b, rep))
	s := b.String()
	require.Contains(t, s, "chaosloop run quickstart (seed 42): FAIL (exit 3)")
	require.Contains(t, s, "SAFETY VIOLATED")
	require.Regexp(t, `Replicas converged, acknowledged writes readable\s+safety\s+FAIL\s+PASS\s+FAIL`, s)
	require.Contains(t, s, "FINDINGS")
	require.Regexp(t, `2 Redis writes acknowledged during fault 2 \(isolate site/dc3\) are gone where analyze predicted no loss \(allowed: 0\): tr-\d+ tr-\d+`, s)
	require.Contains(t, s, "baseline")
}

// slowFailover: the document store refuses writes from +7 s to +18.1 s
// after the isolation, over a 5 s budget.
func slowFailover(t *testing.T) *checks.Report {
	t.Helper()
	sc, err := scenarios.Parse("../../scenarios/quickstart.yaml")
	require.NoError(t, err)
	r := 10.0
	sc.Load.Rate = &r
	run, err := synth.Generate(sc, synth.Config{
		WriteOutage:   map[int]synth.WriteOutage{1: {Service: "bulk-db", From: 7 * time.Second, To: 18100 * time.Millisecond}},
		ProbeTimeouts: []synth.ProbeTimeout{{Service: "kafka", T: 50 * time.Second}}})
	require.NoError(t, err)
	rep, err := checks.Run(checks.Input{Scenario: sc, Events: run.Events, Final: run.Final, Seed: 42}, checks.Options{Failover: map[string]time.Duration{"bulk-db": 5 * time.Second}})
	require.NoError(t, err)
	return rep
}

func TestFailoverInEveryOutput(t *testing.T) {
	rep := slowFailover(t)
	require.Equal(t, checks.Fail, rep.Check(checks.CheckFailover).Status)

	var txt bytes.Buffer
	require.NoError(t, render.Text(&txt, rep))
	s := txt.String()
	require.Contains(t, s, "WRITE OUTAGES")
	require.Regexp(t, `\n2\s+-\s+-\s+-\s+11\.\ds > 5s!`, s)
	require.Regexp(t, `probe timeouts\s+0\s+1\s`, s)
	require.Contains(t, s, "[failover] bulk-db refused writes for 11.")

	var h bytes.Buffer
	require.NoError(t, render.HTML(&h, rep))
	hs := h.String()
	require.Contains(t, hs, `<table id="failover">`)
	require.Contains(t, hs, `<td class="num sev-fail">11.`)
	require.Regexp(t, `<rect class="outage"[^>]*stroke="#c62828"[^>]*><title>bulk-db write outage 11\.\ds \(1\d\d\.\ds–1\d\d\.\ds, fault 2, budget 5s\)`, hs)

	var x bytes.Buffer
	require.NoError(t, render.JUnit(&x, rep))
	xs := x.String()
	require.Contains(t, xs, `<property name="outage.bulk-db" value="11.`)
	require.Contains(t, xs, `<property name="budget.bulk-db" value="5s"></property>`)
	require.Contains(t, xs, `<property name="probeTimeouts.kafka" value="1"></property>`)
	require.Contains(t, xs, `<property name="budget.kafka" value="12s (default table: KRaft`)
	j := parseJUnit(t, rep)
	for _, c := range j.Suites[2].Cases {
		require.Equal(t, c.Name == checks.CheckFailover, c.Failure != nil, c.Name)
	}
}

// A scheduler slip shows in the fault tables and the fault suite.
func TestLatenessShown(t *testing.T) {
	rep := report(t, synth.Config{})
	rep.Faults[1].InjectLate = checks.Sec(1500 * time.Millisecond)
	rep.Faults[1].RecoverLate = checks.Sec(1500 * time.Millisecond)
	var b bytes.Buffer
	require.NoError(t, render.Text(&b, rep))
	require.Regexp(t, `1 power-off rack/dc1/r1\s+61\.0s\s+101\.0s\s+-\s`, b.String())
	require.Regexp(t, `2 isolate site/dc3\s+131\.0s\s+161\.0s\s+\+1\.5s/\+1\.5s\s`, b.String())
	b.Reset()
	require.NoError(t, render.HTML(&b, rep))
	require.True(t, strings.Contains(b.String(), `<td class="num">&#43;1.5s/&#43;1.5s</td>`), "html lateness")
	b.Reset()
	require.NoError(t, render.JUnit(&b, rep))
	require.Contains(t, b.String(), `<property name="injectLate" value="+1.5s"></property>`)
	require.Contains(t, b.String(), `<property name="injectLate" value="0s"></property>`)
}
