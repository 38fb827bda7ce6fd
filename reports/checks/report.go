// Package checks turns a run's evidence (history and final state) into
// verdicts: eight checks, each PASS, FAIL or UNKNOWN with the evidence a
// person needs to act on (counts, ids, times), per fault and for the whole
// run, and the exit code that sums them up. It reads and renders nothing;
// reports/render writes the report files.
package checks

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Status is a check's outcome.
type Status string

const (
	Pass    Status = "PASS"
	Fail    Status = "FAIL"
	Unknown Status = "UNKNOWN" // the evidence needed is missing: never a pass
	Skip    Status = "SKIP"    // disabled by the scenario (expect.quorum: any)
)

// rank orders statuses from best to worst for combining.
func (s Status) rank() int {
	switch s {
	case Skip:
		return 0
	case Pass:
		return 1
	case Unknown:
		return 2
	case Fail:
		return 3
	}
	return 2
}

func worst(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Class says what a failed check violates.
type Class string

const (
	Safety   Class = "safety"   // data lost or corrupted: exit 3
	Liveness Class = "liveness" // availability or speed: exit 4
)

// Check identifiers, stable in report.json and junit.xml.
const (
	CheckAcknowledged = "acknowledged-transfers"
	CheckMoney        = "money-conserved"
	CheckKafka        = "kafka-round-trip"
	CheckReplicas     = "replicas-and-writes"
	CheckQuorum       = "quorum"
	CheckFailover     = "failover"
	CheckThroughput   = "throughput"
	CheckFaultEffect  = "fault-effect"
)

// Exit codes (the run command's contract).
const (
	ExitPass     = 0
	ExitSafety   = 3
	ExitLiveness = 4
)

// Sec is a time or duration written to JSON as seconds (millisecond
// precision), the unit every time in report.json uses.
type Sec time.Duration

// MarshalJSON writes seconds.
func (s Sec) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(math.Round(time.Duration(s).Seconds()*1000)/1000, 'f', -1, 64)), nil
}

// UnmarshalJSON reads seconds.
func (s *Sec) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Sec(time.Duration(math.Round(f * 1e9)))
	return nil
}

// D returns the duration.
func (s Sec) D() time.Duration { return time.Duration(s) }

func (s Sec) String() string { return fmtDur(time.Duration(s)) }

// Finding is one piece of evidence.
type Finding struct {
	// Severity: fail (makes the check FAIL), unknown (makes it UNKNOWN),
	// warning (worth a look, does not change the status) or info.
	Severity string `json:"severity"`
	Message  string `json:"message"`
	// Fault indexes Report.Faults; nil when not attributable to a fault.
	Fault   *int   `json:"fault,omitempty"`
	Service string `json:"service,omitempty"`
	// From/To bound the time the finding covers (To omitted for an instant).
	From *Sec `json:"from,omitempty"`
	To   *Sec `json:"to,omitempty"`
	// IDs lists the operations concerned, at most Options.MaxIDs;
	// MoreIDs counts those left out.
	IDs     []string `json:"ids,omitempty"`
	MoreIDs int      `json:"moreIds,omitempty"`
}

// Finding severities.
const (
	SevFail    = "fail"
	SevUnknown = "unknown"
	SevWarning = "warning"
	SevInfo    = "info"
)

// FaultStatus is a check's outcome for one fault.
type FaultStatus struct {
	Fault   int    `json:"fault"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
}

// Result is one check's outcome.
type Result struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Class Class  `json:"class"`
	// Status of the whole run: the worst of the findings.
	Status Status `json:"status"`
	// Summary says in plain words what was found.
	Summary string `json:"summary"`
	// Counts are the check's numbers (keys per check, documented there).
	Counts   map[string]int64 `json:"counts,omitempty"`
	Findings []Finding        `json:"findings,omitempty"`
	// PerFault has one entry per Report.Faults entry.
	PerFault []FaultStatus `json:"perFault"`
}

// ServicePrediction is what analyze predicts for a service under a fault.
type ServicePrediction struct {
	Service      string `json:"service"`
	Verdict      string `json:"verdict"`
	MembersUp    int    `json:"membersUp"`
	Members      int    `json:"members"`
	LossPossible bool   `json:"acknowledgedLossPossible"`
}

// FaultInfo describes one fault as planned and as it happened.
type FaultInfo struct {
	// Index in the scenario's faults (-1: not in the scenario).
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Action     string `json:"action"`
	Target     string `json:"target"`
	PlannedAt  *Sec   `json:"plannedAt,omitempty"`
	PlannedFor *Sec   `json:"plannedFor,omitempty"`
	Injected   bool   `json:"injected"`
	InjectAt   Sec    `json:"injectAt"`
	Recovered  bool   `json:"recovered"`
	RecoverAt  Sec    `json:"recoverAt"`
	// Predicted: analyze's verdicts with this fault alone active.
	Predicted []ServicePrediction `json:"predicted"`
	// Throughput while active over baseline; Recovery after heal (nil
	// when not measured).
	ThroughputRatio *float64 `json:"throughputRatio,omitempty"`
	Recovery        *Sec     `json:"recovery,omitempty"`
	// InjectLate and RecoverLate: actual − planned time of the inject
	// and of the heal, as the scheduler recorded them.
	InjectLate  Sec `json:"injectLate,omitempty"`
	RecoverLate Sec `json:"recoverLate,omitempty"`
	// Failover: per service, the write outage and settling times
	// measured under this fault.
	Failover []ServiceFailover `json:"failover,omitempty"`
	// Effects observed (check 8).
	Effects []string `json:"effects,omitempty"`
	// Status is the worst of the checks for this fault.
	Status Status `json:"status"`
}

// PhaseStats are load numbers for one stretch of the run.
type PhaseStats struct {
	Name string `json:"name"`
	From Sec    `json:"from"`
	To   Sec    `json:"to"`
	OK   int    `json:"ok"`
	// Errors: failed or unknown-outcome transfers attributed to the phase
	// as latencies are (by invocation, or the fault that went in while in
	// flight), not by when they gave up.
	Errors     int     `json:"errors"`
	Dropped    int     `json:"dropped"`
	Throughput float64 `json:"throughput"` // acknowledged transfers/s
	P50        Sec     `json:"p50"`
	P99        Sec     `json:"p99"`
	Max        Sec     `json:"max"`
	Latencies  int     `json:"latencies"` // how many latencies the percentiles use
}

// Segment is a stretch of time a service spent in one state.
type Segment struct {
	From  Sec    `json:"from"`
	To    Sec    `json:"to"`
	State string `json:"state"` // ok | degraded | read-only | down | unknown
}

// ServiceTimeline is a service's observed and predicted states over time.
type ServiceTimeline struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	// ProbeTimeouts: probes that ran out of time (unknown, not compared).
	ProbeTimeouts int       `json:"probeTimeouts,omitempty"`
	Observed      []Segment `json:"observed"`
	Predicted     []Segment `json:"predicted"`
}

// Values is a series that writes NaN (no data) as JSON null.
type Values []float64

// MarshalJSON writes the values, NaN as null.
func (v Values) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, x, 'f', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads values, null as NaN.
func (v *Values) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*v = make(Values, len(raw))
	for i, p := range raw {
		if p == nil {
			(*v)[i] = math.NaN()
		} else {
			(*v)[i] = *p
		}
	}
	return nil
}

// Series are the report's plots, one value per bucket from time 0.
type Series struct {
	Bucket     Sec    `json:"bucket"`
	Throughput Values `json:"throughput"` // acknowledged transfers/s
	Errors     Values `json:"errors"`     // failed or unknown transfers/s
	Dropped    Values `json:"dropped"`    // dropped arrivals/s
	P50        Values `json:"p50"`        // seconds, by invocation time; null: no data
	P99        Values `json:"p99"`
	// Baseline throughput (transfers/s), 0 when unmeasured.
	Baseline float64           `json:"baseline"`
	Services []ServiceTimeline `json:"services"`
}

// Timings are the run's landmarks.
type Timings struct {
	LoadStart     Sec `json:"loadStart"`
	BaselineStart Sec `json:"baselineStart"`
	FirstFault    Sec `json:"firstFault"`
	LoadEnd       Sec `json:"loadEnd"`
	End           Sec `json:"end"`
}

// Expectations are the scenario's thresholds as applied.
type Expectations struct {
	Quorum           string  `json:"quorum"`
	AcknowledgedLoss int     `json:"acknowledgedLoss"`
	Throughput       float64 `json:"throughput"`
	Recovery         Sec     `json:"recovery"`
}

// ReportVersion is report.json's format version. 2: failover budgets and
// measured failovers per fault and service, probe timeouts, the failover
// check, and fault inject/heal lateness; options lost settleAfterInject
// (the quorum check waits for each service's budget instead).
const ReportVersion = 2

// Report is everything a run is judged on, as written to report.json.
type Report struct {
	Version  int    `json:"version"`
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	// Backend is where the lab ran: local, kind.
	Backend string     `json:"backend,omitempty"`
	Started *time.Time `json:"started,omitempty"`
	// Verdict: PASS, FAIL, or UNKNOWN (inconclusive).
	Verdict  Status `json:"verdict"`
	ExitCode int    `json:"exitCode"`
	// Why says, in plain words, what decided the verdict.
	Why     []string     `json:"why"`
	Expect  Expectations `json:"expect"`
	Options OptionsJSON  `json:"options"`
	Timings Timings      `json:"timings"`
	Checks  []Result     `json:"checks"`
	Faults  []FaultInfo  `json:"faults"`
	Phases  []PhaseStats `json:"phases"`
	Series  Series       `json:"series"`
	// Observing, when set, says why the run drove no load (attach mode):
	// only the quorum check is judged.
	Observing string `json:"observing,omitempty"`
	// Budgets: each service's failover budget as applied.
	Budgets  map[string]Budget `json:"budgets"`
	Problems []string          `json:"historyProblems,omitempty"`
}

// Check returns the result with the given id, or nil.
func (r *Report) Check(id string) *Result {
	for i := range r.Checks {
		if r.Checks[i].ID == id {
			return &r.Checks[i]
		}
	}
	return nil
}
