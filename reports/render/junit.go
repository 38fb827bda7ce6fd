package render

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/chaosloop/chaosloop/reports/checks"
)

// JUnit XML as Jenkins (junit plugin) and GitLab read it: testsuites →
// testsuite → testcase with failure, error or skipped.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	ClassName string `xml:"classname,attr"`
	Time      string `xml:"time,attr"`
	// Properties carry the measured figures (failover outages, budgets,
	// probe timeouts), as Jenkins' junit plugin and Surefire read them.
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitMessage   `xml:"failure,omitempty"`
	Error      *junitMessage   `xml:"error,omitempty"`
	Skipped    *junitMessage   `xml:"skipped,omitempty"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnit writes junit.xml: a suite "<scenario>: run" with one testcase per
// check for the whole run, then a suite per fault with one testcase per
// check for that fault. FAIL is a failure; UNKNOWN an error (inconclusive
// must not pass in CI); SKIP skipped.
func JUnit(w io.Writer, rep *checks.Report) error {
	total := fmt.Sprintf("%.3f", rep.Timings.End.D().Seconds())
	all := junitSuites{Name: "chaosloop " + rep.Scenario, Time: total}
	run := junitSuite{Name: rep.Scenario + ": run", Time: total, Properties: []junitProperty{
		{"seed", fmt.Sprint(rep.Seed)}, {"backend", rep.Backend}, {"verdict", string(rep.Verdict)}, {"exitCode", fmt.Sprint(rep.ExitCode)},
	}}
	if rep.Started != nil {
		run.Timestamp = rep.Started.Format("2006-01-02T15:04:05")
	}
	class := "chaosloop." + rep.Scenario
	for _, c := range rep.Checks {
		var out strings.Builder
		fmt.Fprintf(&out, "%s\n", c.Summary)
		for _, f := range c.Findings {
			fmt.Fprintf(&out, "[%s] %s%s\n", f.Severity, f.Message, idList(f))
		}
		run.add(junitCase{Name: c.ID, ClassName: class + ".run", Time: "0", SystemOut: out.String(), Properties: runProperties(rep, c.ID)}, c.Status, c.Class, c.Summary, failText(c, nil))
	}
	all.Suites = append(all.Suites, run)
	for i, f := range rep.Faults {
		name := fmt.Sprintf("fault %d %s", i+1, f.Name)
		s := junitSuite{Name: rep.Scenario + ": " + name, Time: fmt.Sprintf("%.3f", (f.RecoverAt - f.InjectAt).D().Seconds()),
			Properties: []junitProperty{{"injectAt", at(f.InjectAt)}, {"recoverAt", at(f.RecoverAt)}, {"injected", fmt.Sprint(f.Injected)},
				{"injectLate", signed(f.InjectLate)}, {"recoverLate", signed(f.RecoverLate)}}}
		for _, c := range rep.Checks {
			pf := c.PerFault[i]
			jc := junitCase{Name: c.ID, ClassName: fmt.Sprintf("%s.fault%d", class, i+1), Time: "0", SystemOut: pf.Summary + "\n"}
			if c.ID == checks.CheckFailover {
				jc.Properties = failoverProperties(f)
			}
			s.add(jc, pf.Status, c.Class, pf.Summary, failText(c, &i))
		}
		all.Suites = append(all.Suites, s)
	}
	for _, s := range all.Suites {
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func (s *junitSuite) add(c junitCase, st checks.Status, class checks.Class, summary, text string) {
	s.Tests++
	switch st {
	case checks.Fail:
		s.Failures++
		c.Failure = &junitMessage{Message: summary, Type: string(class), Text: text}
	case checks.Unknown:
		s.Errors++
		c.Error = &junitMessage{Message: "UNKNOWN (inconclusive): " + summary, Type: "inconclusive", Text: text}
	case checks.Skip:
		s.Skipped++
		c.Skipped = &junitMessage{Message: summary}
	}
	s.Cases = append(s.Cases, c)
}

// failText lists the fail and unknown findings (of one fault, when given).
func failText(c checks.Result, fault *int) string {
	var b strings.Builder
	for _, f := range c.Findings {
		if f.Severity != checks.SevFail && f.Severity != checks.SevUnknown {
			continue
		}
		if fault != nil && (f.Fault == nil || *f.Fault != *fault) {
			continue
		}
		fmt.Fprintf(&b, "%s%s\n", f.Message, idList(f))
	}
	return b.String()
}

// runProperties: the failover testcase carries each service's budget, the
// quorum testcase each service's probe timeouts.
func runProperties(rep *checks.Report, id string) []junitProperty {
	var ps []junitProperty
	for _, tl := range rep.Series.Services {
		switch id {
		case checks.CheckFailover:
			b := rep.Budgets[tl.Service]
			ps = append(ps, junitProperty{"budget." + tl.Service, fmt.Sprintf("%s (%s: %s)", dur(b.Budget.D()), b.Source, b.Derivation)})
		case checks.CheckQuorum:
			ps = append(ps, junitProperty{"probeTimeouts." + tl.Service, fmt.Sprint(tl.ProbeTimeouts)})
		}
	}
	return ps
}

// failoverProperties: per service, the longest write outage under the
// fault, its budget, and the settling times.
func failoverProperties(f checks.FaultInfo) []junitProperty {
	var ps []junitProperty
	for _, fo := range f.Failover {
		ps = append(ps,
			junitProperty{"outage." + fo.Service, outageCell(fo)},
			junitProperty{"budget." + fo.Service, dur(fo.Budget.D())},
			junitProperty{"steady." + fo.Service, since(fo.Steady)},
			junitProperty{"fullStrength." + fo.Service, since(fo.FullStrength)})
	}
	return ps
}
