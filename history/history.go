// Package history is the run's evidence: every operation's invocation and
// completion, every fault and every observation of a service, one JSON object
// per line in history.jsonl, flushed as it goes so that a crash of chaosloop
// keeps what happened. The checkers read it back (and tests replay saved
// histories through them).
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event types.
const (
	// Invoke: a client started an operation.
	Invoke = "invoke"
	// OK: the operation completed and was acknowledged (for a transfer: its
	// notification arrived).
	OK = "ok"
	// Fail: the operation definitely did not take effect (refused).
	Fail = "fail"
	// Info: the outcome is unknown (timeout, connection lost): it may or may
	// not have taken effect, and checkers must treat it so.
	Info = "info"
	// Dropped: an arrival the open-loop generator could not start in time
	// (counted, never queued behind a fault).
	Dropped = "dropped"
	// Fault: a fault was injected or recovered (Phase).
	Fault = "fault"
	// Sample: an observation of one service's state.
	Sample = "sample"
	// Phase: the run entered a phase (warmup, baseline, fault, heal, converge, check).
	PhaseChange = "phase"
)

// Operation kinds.
const (
	OpTransfer = "transfer"      // a single transfer through the full pipeline
	OpBulk     = "bulk"          // a bulk transfer stored in the document store
	OpRedisSet = "redis-set"     // an acknowledged write to Redis (duplicate check)
	OpProduce  = "kafka-produce" // a record the broker acknowledged
	OpConsume  = "kafka-consume" // a record consumed
)

// ConsumeAllFailed prefixes the error of the "check" phase event when
// the run's final read of Kafka (every record from the start) failed:
// the records it did not read are unknown, not lost.
const ConsumeAllFailed = "consume-all: "

// Event is one line of history.jsonl. Fields are omitted when empty.
type Event struct {
	// T is the time since the run started.
	T       time.Duration `json:"t"`
	Type    string        `json:"type"`
	Op      string        `json:"op,omitempty"`
	ID      string        `json:"id,omitempty"`
	Process int           `json:"process,omitempty"`

	// Transfers.
	Payer    string `json:"payer,omitempty"`
	Payee    string `json:"payee,omitempty"`
	Amount   int64  `json:"amount,omitempty"` // minor units
	Currency string `json:"currency,omitempty"`

	// Kafka records: topic/partition/offset of an acknowledged produce or a
	// consume.
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	Offset    int64  `json:"offset,omitempty"`

	// Faults.
	Phase  string `json:"phase,omitempty"` // inject | recover | settle (not back at full strength before an inject: Error); or the run phase for PhaseChange
	Action string `json:"action,omitempty"`
	Target string `json:"target,omitempty"`
	// Late is how long after its planned time a fault went in or out
	// (actual − planned; negative when early): the realised schedule
	// shows its slips instead of hiding them.
	Late time.Duration `json:"late,omitempty"`

	// Samples.
	Service   string `json:"service,omitempty"`
	Observed  string `json:"observed,omitempty"` // ok | degraded | read-only | down | unknown
	MembersUp int    `json:"membersUp,omitempty"`
	Writable  *bool  `json:"writable,omitempty"`
	// Timeout: the probe ran out of time before the service's state was
	// known. Observed is then "unknown": a slow answer is no evidence of
	// a refused write.
	Timeout bool `json:"timeout,omitempty"`
	// Took is how long the observation took: the service was seen at some
	// moment in [T, T+Took].
	Took time.Duration `json:"took,omitempty"`

	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Writer appends events to history.jsonl, flushing each one, safe for
// concurrent use.
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	start time.Time
	enc   *json.Encoder
	// failed counts the events that could not be written, first the
	// first error: lost evidence must be reported, not dropped.
	failed int
	first  error
}

// Create opens path for writing; T of each event counts from start.
func Create(path string, start time.Time) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	return &Writer{f: f, w: w, start: start, enc: json.NewEncoder(w)}, nil
}

// Since returns the run-relative time for now.
func (h *Writer) Since() time.Duration { return time.Since(h.start) }

// Add records an event, stamping T when it is zero. The line reaches the
// kernel before Add returns, so a crash of chaosloop keeps it.
func (h *Writer) Add(e Event) error {
	if e.T == 0 {
		e.T = time.Since(h.start)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.enc.Encode(&e)
	if err == nil {
		err = h.w.Flush()
	}
	if err != nil {
		h.failed++
		if h.first == nil {
			h.first = err
		}
	}
	return err
}

// Lost returns an error saying how many events could not be written and
// why, or nil when every event was.
func (h *Writer) Lost() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed == 0 {
		return nil
	}
	return fmt.Errorf("history: %d events not written (first: %w); the evidence is incomplete", h.failed, h.first)
}

// Close flushes and closes the file.
func (h *Writer) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.w.Flush(); err != nil {
		h.f.Close()
		return err
	}
	return h.f.Close()
}

// Read parses a history, tolerating a torn last line (a crash mid-write).
func Read(r io.Reader) ([]Event, error) {
	var out []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	var pending error
	for sc.Scan() {
		line++
		if pending != nil {
			return nil, pending
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pending = fmt.Errorf("history line %d: %w", line, err)
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// ReadFile reads a history file.
func ReadFile(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}
