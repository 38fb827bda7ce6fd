// Package render writes a checks.Report for people and machines:
// report.json (versioned), junit.xml (a testcase per check for the whole
// run and per fault, for nightly CI), report.html (self-contained, with
// inline SVG plots) and a plain-text scorecard for the terminal.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chaosloop/chaosloop/reports/checks"
)

// JSON writes report.json.
func JSON(w io.Writer, rep *checks.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// Text writes the terminal scorecard: the verdict and why, one line per
// check with its status per fault, the faults, and the load per phase.
func Text(w io.Writer, rep *checks.Report) error {
	var b strings.Builder
	on := ""
	if rep.Backend != "" {
		on = " on " + rep.Backend
	}
	fmt.Fprintf(&b, "chaosloop run %s%s (seed %d): %s (exit %d)\n", rep.Scenario, on, rep.Seed, verdictWord(rep.Verdict), rep.ExitCode)
	for i, line := range rep.Why {
		if i == 0 {
			fmt.Fprintf(&b, "  %s\n", line)
		} else {
			fmt.Fprintf(&b, "    - %s\n", line)
		}
	}
	if rep.Observing != "" {
		fmt.Fprintf(&b, "  No load was driven (%s): only quorum is judged, from the probes' samples.\n", rep.Observing)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "CHECK\tCLASS\tRUN")
	for i := range rep.Faults {
		fmt.Fprintf(tw, "\tFAULT %d", i+1)
	}
	fmt.Fprintln(tw)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s", c.Title, c.Class, c.Status)
		for _, pf := range c.PerFault {
			fmt.Fprintf(tw, "\t%s", pf.Status)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(rep.Faults) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FAULT\tINJECTED\tHEALED\tLATE\tTHROUGHPUT\tRECOVERY\tSTATUS")
		for i, f := range rep.Faults {
			inj, heal, tp, rec := "never", "-", "-", "-"
			if f.Injected {
				inj = at(f.InjectAt)
				heal = "not healed"
				if f.Recovered {
					heal = at(f.RecoverAt)
				}
			}
			if f.ThroughputRatio != nil {
				tp = fmt.Sprintf("%.0f%% of baseline", *f.ThroughputRatio*100)
			}
			if f.Recovery != nil {
				rec = dur(f.Recovery.D())
			}
			fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, f.Name, inj, heal, lateness(f), tp, rec, f.Status)
		}
		tw.Flush()
		failoverText(&b, rep)
	}
	if len(rep.Phases) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "PHASE\tFROM\tTO\tTRANSFERS/S\tP50\tP99\tERRORS\tDROPPED\t")
		for _, p := range rep.Phases {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%s\t%d\t%d\t\n", p.Name, at(p.From), at(p.To), p.Throughput, dur(p.P50.D()), dur(p.P99.D()), p.Errors, p.Dropped)
		}
		tw.Flush()
	}
	// The findings that decided the verdict, so the terminal alone is
	// enough to act on.
	var decisive []string
	for _, c := range rep.Checks {
		for _, f := range c.Findings {
			if f.Severity == checks.SevFail || f.Severity == checks.SevUnknown {
				decisive = append(decisive, fmt.Sprintf("%s [%s] %s%s", strings.ToUpper(f.Severity), c.ID, f.Message, idList(f)))
			}
		}
	}
	if len(decisive) > 0 {
		b.WriteString("\nFINDINGS\n")
		for _, d := range decisive {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func idList(f checks.Finding) string {
	if len(f.IDs) == 0 {
		return ""
	}
	s := ": " + strings.Join(f.IDs, " ")
	if f.MoreIDs > 0 {
		s += fmt.Sprintf(" (+%d more)", f.MoreIDs)
	}
	return s
}

func verdictWord(s checks.Status) string {
	if s == checks.Unknown {
		return "INCONCLUSIVE"
	}
	return string(s)
}

// at formats a run time as seconds.
func at(s checks.Sec) string { return fmt.Sprintf("%.1fs", s.D().Seconds()) }

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// lateness is a fault's inject/heal slip, "-" when on time.
func lateness(f checks.FaultInfo) string {
	if f.InjectLate == 0 && f.RecoverLate == 0 {
		return "-"
	}
	return fmt.Sprintf("%s/%s", signed(f.InjectLate), signed(f.RecoverLate))
}

func signed(s checks.Sec) string {
	switch {
	case s.D() == 0:
		return "0s"
	case s.D() < 0:
		return "-" + dur(-s.D())
	}
	return "+" + dur(s.D())
}

// outageCell is one service's failover under one fault: its longest write
// outage against its budget.
func outageCell(fo checks.ServiceFailover) string {
	o := fo.Outage
	switch {
	case o == nil:
		return "-"
	case o.Open:
		return fmt.Sprintf("≥%s open", dur(o.Duration.D()))
	case o.Duration > fo.Budget:
		return fmt.Sprintf("%s > %s!", dur(o.Duration.D()), dur(fo.Budget.D()))
	}
	return dur(o.Duration.D())
}

// failoverText writes the fault × service table of write outages, the
// budgets, and the probe timeouts per service.
func failoverText(b *strings.Builder, rep *checks.Report) {
	svcs := rep.Series.Services
	if len(svcs) == 0 {
		return
	}
	b.WriteString("\nWRITE OUTAGES (longest per fault; budget below; '!' over budget, 'open' not resumed before the heal)\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "FAULT")
	for _, s := range svcs {
		fmt.Fprintf(tw, "\t%s", s.Service)
	}
	fmt.Fprintln(tw)
	for i, f := range rep.Faults {
		fmt.Fprintf(tw, "%d", i+1)
		for _, s := range svcs {
			cell := "-"
			for _, fo := range f.Failover {
				if fo.Service == s.Service {
					cell = outageCell(fo)
				}
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "budget")
	for _, s := range svcs {
		fmt.Fprintf(tw, "\t%s", dur(rep.Budgets[s.Service].Budget.D()))
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "probe timeouts")
	for _, s := range svcs {
		fmt.Fprintf(tw, "\t%d", s.ProbeTimeouts)
	}
	fmt.Fprintln(tw)
	tw.Flush()
}

// since formats a time to reach a state: "never" when it was not reached,
// "0s" when it held from the start.
func since(s *checks.Sec) string {
	switch {
	case s == nil:
		return "never"
	case s.D() == 0:
		return "0s"
	}
	return dur(s.D())
}
