package render

import (
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/chaosloop/chaosloop/reports/checks"
)

// HTML writes report.html: one self-contained file (inline CSS and SVG, no
// script, no external asset) with the scorecard on top — the verdict and,
// in plain words, why — then the plots, the checks with their evidence,
// the faults and the phases.
func HTML(w io.Writer, rep *checks.Report) error {
	data := struct {
		R          *checks.Report
		Word       string
		Throughput template.HTML
		Latency    template.HTML
		Quorum     template.HTML
		Colors     map[string]string
	}{R: rep, Word: verdictWord(rep.Verdict), Colors: stateColor,
		// The SVG is generated here with every text escaped.
		Throughput: template.HTML(throughputSVG(rep)), Latency: template.HTML(latencySVG(rep)), Quorum: template.HTML(quorumSVG(rep))}
	return page.Execute(w, data)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower": func(s checks.Status) string { return strings.ToLower(string(s)) },
	"at":    at,
	"dur":   func(s checks.Sec) string { return dur(s.D()) },
	"pct": func(f *float64) string {
		if f == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", *f*100)
	},
	"recovery": func(s *checks.Sec) string {
		if s == nil {
			return "-"
		}
		return dur(s.D())
	},
	"tps":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"late":   lateness,
	"since":  since,
	"outage": func(fo *checks.ServiceFailover) string { return outageCell(*fo) },
	"overBudget": func(fo *checks.ServiceFailover) bool {
		return fo.Outage != nil && !fo.Outage.Open && fo.Outage.Duration > fo.Budget
	},
	"foOf": func(f checks.FaultInfo, svc string) *checks.ServiceFailover {
		for i := range f.Failover {
			if f.Failover[i].Service == svc {
				return &f.Failover[i]
			}
		}
		return nil
	},
	"ids":   idList,
	"inc":   func(i int) int { return i + 1 },
	"first": func(s []string) string { return s[0] },
	"rest":  func(s []string) []string { return s[1:] },
	"faultOf": func(f checks.Finding) string {
		if f.Fault == nil {
			return ""
		}
		return fmt.Sprintf("fault %d", *f.Fault+1)
	},
	"span": func(f checks.Finding) string {
		switch {
		case f.From != nil && f.To != nil:
			return at(*f.From) + "–" + at(*f.To)
		case f.From != nil:
			return at(*f.From)
		}
		return ""
	},
}).Parse(pageTemplate))

const pageTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>chaosloop {{.R.Scenario}}: {{.Word}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{border-radius:8px;padding:14px 18px;margin:12px 0;color:#fff}
.verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}.verdict.unknown{background:#6d6d6d}
.verdict .word{font-size:28px;font-weight:700}.verdict ul{margin:6px 0 0;padding-left:20px}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.st{font-weight:700;padding:1px 6px;border-radius:4px;color:#fff;font-size:12px}
.st.pass{background:#2e7d32}.st.fail{background:#c62828}.st.unknown{background:#6d6d6d}.st.skip{background:#9e9e9e}
.sev-fail{color:#c62828}.sev-unknown{color:#6d6d6d}.sev-warning{color:#ef6c00}.sev-info{color:#555}
details{margin:2px 0}summary{cursor:pointer}.small{color:#666;font-size:12px}code{font-size:12px}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>
<h1>chaosloop run: {{.R.Scenario}}</h1>
<div class="small">{{with .R.Backend}}on {{.}} · {{end}}seed {{.R.Seed}}{{with .R.Started}} · started {{.Format "2006-01-02 15:04:05 MST"}}{{end}} · report version {{.R.Version}} · exit code {{.R.ExitCode}}</div>

<div class="verdict {{lower .R.Verdict}}" id="scorecard">
<div class="word">{{.Word}}</div>
<div>{{first .R.Why}}</div>
<ul>{{range rest .R.Why}}<li>{{.}}</li>{{end}}</ul>
{{if .R.Observing}}<p>No load was driven ({{.R.Observing}}): only quorum is judged, from the probes' samples.</p>{{end}}
</div>

<table><tr><th>check</th><th>class</th><th>run</th>{{range $i, $f := .R.Faults}}<th>fault {{inc $i}}</th>{{end}}<th>summary</th></tr>
{{range .R.Checks}}<tr><td>{{.Title}}</td><td>{{.Class}}</td><td><span class="st {{lower .Status}}">{{.Status}}</span></td>
{{range .PerFault}}<td><span class="st {{lower .Status}}" title="{{.Summary}}">{{.Status}}</span></td>{{end}}<td>{{.Summary}}</td></tr>
{{end}}</table>

<h2>Throughput</h2>
<div class="plot" id="plot-throughput">{{.Throughput}}</div>
<h2>Latency</h2>
<div class="plot" id="plot-latency">{{.Latency}}</div>
<h2>Service state (observed, with analyze's prediction below)</h2>
<div class="plot" id="plot-quorum">{{.Quorum}}</div>
<div class="legend small">{{range $k, $v := .Colors}}<span style="background:{{$v}}"></span>{{$k}}{{end}}</div>

<h2>Faults</h2>
<table><tr><th>#</th><th>fault</th><th>injected</th><th>healed</th><th>late (inject/heal)</th><th>throughput</th><th>recovery</th><th>effects</th><th>analyze predicts</th><th>status</th></tr>
{{range $i, $f := .R.Faults}}<tr><td>{{inc $i}}</td><td>{{.Name}}</td>
<td>{{if .Injected}}{{at .InjectAt}}{{else}}never{{end}}</td><td>{{if .Recovered}}{{at .RecoverAt}}{{else}}-{{end}}</td><td class="num">{{late .}}</td>
<td class="num">{{pct .ThroughputRatio}}</td><td class="num">{{recovery .Recovery}}</td>
<td>{{range .Effects}}<div>{{.}}</div>{{else}}<span class="sev-fail">none observed</span>{{end}}</td>
<td>{{range .Predicted}}<div>{{.Service}}: {{.Verdict}} ({{.MembersUp}}/{{.Members}}){{if .LossPossible}} <b>loss possible</b>{{end}}</div>{{end}}</td>
<td><span class="st {{lower .Status}}">{{.Status}}</span></td></tr>
{{end}}</table>

<h2>Failover: write outages per fault and service</h2>
<div class="small">The longest stretch of refused writes that began during each fault (first refusal to first accepted write, from samples and the service's own operations), then the time to analyze's predicted state and, after the heal, back to full strength. <span class="sev-fail">Red</span>: over the service's failover budget; open: writes had not resumed when the fault healed (quorum lost).</div>
<table id="failover"><tr><th>fault</th>{{range .R.Series.Services}}<th>{{.Service}}</th>{{end}}</tr>
{{range $i, $f := .R.Faults}}<tr><td>{{inc $i}} {{.Name}}</td>{{range $.R.Series.Services}}{{with foOf $f .Service}}<td class="num{{if overBudget .}} sev-fail{{end}}">{{outage .}}<div class="small">steady {{since .Steady}} · full {{since .FullStrength}}</div></td>{{else}}<td>-</td>{{end}}{{end}}</tr>
{{end}}<tr><th>budget</th>{{range .R.Series.Services}}{{with index $.R.Budgets .Service}}<td class="num" title="{{.Source}}: {{.Derivation}}">{{dur .Budget}}<div class="small">{{.Source}}</div></td>{{end}}{{end}}</tr>
<tr><th>probe timeouts</th>{{range .R.Series.Services}}<td class="num">{{.ProbeTimeouts}}</td>{{end}}</tr>
</table>

<h2>Checks and evidence</h2>
{{range .R.Checks}}<details {{if ne (lower .Status) "pass"}}open{{end}}><summary><span class="st {{lower .Status}}">{{.Status}}</span> <b>{{.Title}}</b> ({{.Class}}) — {{.Summary}}</summary>
{{with .Counts}}<div class="small">{{range $k, $v := .}}{{$k}}={{$v}} {{end}}</div>{{end}}
<ul>{{range .Findings}}<li class="sev-{{.Severity}}">[{{.Severity}}] {{with faultOf .}}<b>{{.}}</b> {{end}}{{with span .}}<span class="small">{{.}}</span> {{end}}{{.Message}}{{with ids .}}<code>{{.}}</code>{{end}}</li>{{end}}</ul>
</details>
{{end}}

<h2>Phases</h2>
<table><tr><th>phase</th><th>from</th><th>to</th><th>transfers/s</th><th>p50</th><th>p99</th><th>max</th><th>errors</th><th>dropped</th></tr>
{{range .R.Phases}}<tr><td>{{.Name}}</td><td class="num">{{at .From}}</td><td class="num">{{at .To}}</td><td class="num">{{tps .Throughput}}</td>
<td class="num">{{dur .P50}}</td><td class="num">{{dur .P99}}</td><td class="num">{{dur .Max}}</td><td class="num">{{.Errors}}</td><td class="num">{{.Dropped}}</td></tr>
{{end}}</table>

<h2>How this was judged</h2>
<div class="small">Expectations: quorum {{.R.Expect.Quorum}}, acknowledged loss ≤ {{.R.Expect.AcknowledgedLoss}}, throughput during faults ≥ {{.R.Expect.Throughput}} of baseline, recovery ≤ {{dur .R.Expect.Recovery}}.
Samples within a service's failover budget of an injection or a heal are not compared with analyze (engines settling); a write outage that ends while its fault is active is judged against that budget (failover check), one that does not end is quorum lost. Probes that timed out are unknown and never compared.
Recovery: start of the first {{dur .R.Options.RecoveryWindow}} window at ≥ {{.R.Options.RecoveryLevel}} of baseline. Exit codes: 3 safety violated, 4 liveness violated or inconclusive, 0 pass.
{{with .R.Problems}}<br>History problems: {{range .}}{{.}}; {{end}}{{end}}</div>
</body></html>
`
