package render

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/chaosloop/chaosloop/reports/checks"
)

// A small SVG plotter: time on x (seconds since the run started), fault
// windows shaded, lines that break where there is no data. Hand-written
// rather than a plotting library so that the HTML stays one dependency-free
// file and byte-for-byte deterministic.

const (
	chartW  = 960.0
	marginL = 124.0
	marginR = 16.0
	marginT = 22.0
	marginB = 30.0
)

var stateColor = map[string]string{
	"ok": "#2e7d32", "degraded": "#f9a825", "read-only": "#ef6c00", "down": "#c62828", "unknown": "#9e9e9e",
}

type chart struct {
	b      strings.Builder
	h      float64
	x1     float64 // seconds at the right edge
	y0, y1 float64
	logY   bool
	plotH  float64
}

func newChart(h, x1 float64) *chart {
	c := &chart{h: h, x1: math.Max(x1, 1)}
	c.plotH = h - marginT - marginB
	return c
}

func (c *chart) X(t float64) float64 { return marginL + t/c.x1*(chartW-marginL-marginR) }

func (c *chart) Y(v float64) float64 {
	f := (v - c.y0) / (c.y1 - c.y0)
	if c.logY {
		f = (math.Log10(math.Max(v, c.y0)) - math.Log10(c.y0)) / (math.Log10(c.y1) - math.Log10(c.y0))
	}
	return marginT + (1-math.Min(math.Max(f, 0), 1))*c.plotH
}

func (c *chart) open(title string) {
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="%s">`, chartW, c.h, html.EscapeString(title))
	fmt.Fprintf(&c.b, `<title>%s</title><rect x="0" y="0" width="%.0f" height="%.0f" fill="#fff"/>`, html.EscapeString(title), chartW, c.h)
}

func (c *chart) close() string {
	c.b.WriteString("</svg>")
	return c.b.String()
}

// faults shades each fault window and labels it with its number.
func (c *chart) faults(fs []checks.FaultInfo) {
	for i, f := range fs {
		if !f.Injected {
			continue
		}
		x0, x1 := c.X(f.InjectAt.D().Seconds()), c.X(f.RecoverAt.D().Seconds())
		fmt.Fprintf(&c.b, `<rect class="fault" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#c62828" fill-opacity="0.10"><title>fault %d: %s</title></rect>`,
			x0, marginT, math.Max(x1-x0, 1), c.plotH, i+1, html.EscapeString(f.Name))
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="11" fill="#c62828">%d %s</text>`, x0+3, marginT-6, i+1, html.EscapeString(f.Name))
	}
}

// axes draws the frame, time ticks and value ticks.
func (c *chart) axes(yLabel string, fmtY func(float64) string) {
	fmt.Fprintf(&c.b, `<g font-size="11" fill="#444" stroke="none">`)
	step := niceStep(c.x1 / 10)
	for t := 0.0; t <= c.x1+1e-9; t += step {
		x := c.X(t)
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, x, marginT, x, marginT+c.plotH)
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%gs</text>`, x, c.h-marginB+14, t)
	}
	for _, v := range c.yTicks() {
		y := c.Y(v)
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`, marginL, y, chartW-marginR, y)
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, marginL-4, y+4, fmtY(v))
	}
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" transform="rotate(-90 %.1f %.1f)" text-anchor="middle">%s</text>`, marginL-52, marginT+c.plotH/2, marginL-52, marginT+c.plotH/2, html.EscapeString(yLabel))
	fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/></g>`, marginL, marginT, chartW-marginL-marginR, c.plotH)
}

func (c *chart) yTicks() []float64 {
	var out []float64
	if c.logY {
		for v := c.y0; v <= c.y1*1.0001; v *= 10 {
			out = append(out, v)
		}
		return out
	}
	step := niceStep((c.y1 - c.y0) / 5)
	for v := c.y0; v <= c.y1+1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// line draws a series, one value per bucket, broken where values are NaN.
func (c *chart) line(vals checks.Values, bucket float64, color, name string, width float64) {
	fmt.Fprintf(&c.b, `<path class="series" data-name="%s" fill="none" stroke="%s" stroke-width="%.1f" d="`, html.EscapeString(name), color, width)
	pen := false
	for i, v := range vals {
		if math.IsNaN(v) {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&c.b, "%s%.1f %.1f", cmd, c.X((float64(i)+0.5)*bucket), c.Y(v))
		pen = true
	}
	c.b.WriteString(`"/>`)
}

// hline draws a labelled horizontal reference line.
func (c *chart) hline(v float64, color, label string) {
	y := c.Y(v)
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="5 4"/>`, marginL, y, chartW-marginR, y, color)
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="11" fill="%s" text-anchor="end">%s</text>`, chartW-marginR-4, y-3, color, html.EscapeString(label))
}

func (c *chart) legend(items [][2]string) {
	x := marginL + 8
	for _, it := range items {
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="12" height="4" fill="%s"/><text x="%.1f" y="%.1f" font-size="11" fill="#333">%s</text>`,
			x, marginT+8, it[1], x+16, marginT+12, html.EscapeString(it[0]))
		x += 24 + 7*float64(len(it[0]))
	}
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func maxOf(vs ...checks.Values) float64 {
	m := 0.0
	for _, v := range vs {
		for _, x := range v {
			if !math.IsNaN(x) {
				m = math.Max(m, x)
			}
		}
	}
	return m
}

// throughputSVG: acknowledged, failed and dropped transfers per second,
// the baseline and the thresholds.
func throughputSVG(rep *checks.Report) string {
	s := rep.Series
	c := newChart(300, rep.Timings.End.D().Seconds())
	c.y1 = math.Max(maxOf(s.Throughput, s.Errors, s.Dropped), s.Baseline) * 1.1
	if c.y1 <= 0 {
		c.y1 = 1
	}
	c.y1 = niceStep(c.y1/5) * math.Ceil(c.y1/niceStep(c.y1/5))
	c.open("Throughput over time")
	c.faults(rep.Faults)
	c.axes("transfers/s", func(v float64) string { return fmt.Sprintf("%g", v) })
	b := s.Bucket.D().Seconds()
	c.line(s.Dropped, b, "#6a1b9a", "dropped", 1)
	c.line(s.Errors, b, "#c62828", "failed or unknown", 1)
	c.line(s.Throughput, b, "#1565c0", "acknowledged", 1.6)
	if s.Baseline > 0 {
		c.hline(s.Baseline, "#555", fmt.Sprintf("baseline %.1f/s", s.Baseline))
		c.hline(s.Baseline*rep.Expect.Throughput, "#ef6c00", fmt.Sprintf("expect.throughput %.0f%%", rep.Expect.Throughput*100))
	}
	c.legend([][2]string{{"acknowledged", "#1565c0"}, {"failed or unknown", "#c62828"}, {"dropped", "#6a1b9a"}})
	return c.close()
}

// latencySVG: p50 and p99 by invocation time, on a log scale.
func latencySVG(rep *checks.Report) string {
	s := rep.Series
	c := newChart(260, rep.Timings.End.D().Seconds())
	c.logY = true
	c.y0 = 0.001
	c.y1 = 0.01
	for m := maxOf(s.P99, s.P50); c.y1 < m; {
		c.y1 *= 10
	}
	c.open("Latency over time")
	c.faults(rep.Faults)
	c.axes("latency (log)", func(v float64) string {
		if v < 1 {
			return fmt.Sprintf("%gms", v*1000)
		}
		return fmt.Sprintf("%gs", v)
	})
	b := s.Bucket.D().Seconds()
	c.line(s.P99, b, "#c62828", "p99", 1.2)
	c.line(s.P50, b, "#1565c0", "p50", 1.6)
	c.legend([][2]string{{"p50", "#1565c0"}, {"p99", "#c62828"}})
	return c.close()
}

// quorumSVG: per service, the observed state (thick bar) over analyze's
// prediction (thin bar).
func quorumSVG(rep *checks.Report) string {
	svcs := rep.Series.Services
	row := 34.0
	c := newChart(marginT+marginB+row*float64(len(svcs))+8, rep.Timings.End.D().Seconds())
	c.open("Service state over time")
	c.faults(rep.Faults)
	fmt.Fprintf(&c.b, `<g font-size="11" fill="#444">`)
	step := niceStep(c.x1 / 10)
	for t := 0.0; t <= c.x1+1e-9; t += step {
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%gs</text>`, c.X(t), c.h-marginB+14, t)
	}
	c.b.WriteString("</g>")
	for i, tl := range svcs {
		y := marginT + 6 + row*float64(i)
		fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#333">%s</text>`, marginL-4, y+12, html.EscapeString(tl.Service))
		bar := func(segs []checks.Segment, y, h float64, kind string) {
			for _, sg := range segs {
				x0, x1 := c.X(sg.From.D().Seconds()), c.X(sg.To.D().Seconds())
				fmt.Fprintf(&c.b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s %s: %.1fs–%.1fs</title></rect>`,
					kind, x0, y, math.Max(x1-x0, 0.5), h, stateColor[sg.State], html.EscapeString(tl.Service), kind, sg.State, sg.From.D().Seconds(), sg.To.D().Seconds())
			}
		}
		bar(tl.Observed, y, 16, "observed")
		bar(tl.Predicted, y+18, 5, "predicted")
		c.outages(rep.Faults, tl.Service, y-2, 20)
	}
	return c.close()
}

// outages outlines each measured write outage of a service on its row,
// red when it exceeded the service's failover budget.
func (c *chart) outages(fs []checks.FaultInfo, svc string, y, h float64) {
	for i, f := range fs {
		for _, fo := range f.Failover {
			o := fo.Outage
			if fo.Service != svc || o == nil {
				continue
			}
			color := "#000"
			if !o.Open && o.Duration > fo.Budget {
				color = "#c62828"
			}
			x0, x1 := c.X(o.From.D().Seconds()), c.X(o.To.D().Seconds())
			fmt.Fprintf(&c.b, `<rect class="outage" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="3 2"><title>%s write outage %s (%.1fs–%.1fs, fault %d, budget %s)%s</title></rect>`,
				x0, y, math.Max(x1-x0, 1), h, color, html.EscapeString(svc), o.Duration, o.From.D().Seconds(), o.To.D().Seconds(), i+1, fo.Budget, openNote(o))
		}
	}
}

func openNote(o *checks.Outage) string {
	if o.Open {
		return "; writes had not resumed at the heal"
	}
	return ""
}
