package checks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/reports/evidence"
)

type tpo struct {
	topic     string
	partition int32
	offset    int64
}

func (k tpo) String() string {
	return k.topic + "/" + strconv.Itoa(int(k.partition)) + "@" + strconv.FormatInt(k.offset, 10)
}

// kafka is check 3: every record the broker acknowledged (acks=all) was
// consumed, and no offset holds two different records (a truncated log
// reusing an acknowledged offset is a loss even if something was consumed
// there).
func (r *run) kafka() Result {
	b := r.newResult(CheckKafka, "Kafka round trip", Safety)
	produced := map[tpo]string{}
	at := map[tpo]time.Duration{}
	replaced := map[string]time.Duration{}
	for _, op := range r.ix.Ops[history.OpProduce] {
		if op.Outcome != history.OK {
			continue
		}
		k := tpo{op.Comp.Topic, op.Comp.Partition, op.Comp.Offset}
		if prev, ok := produced[k]; ok && prev != op.ID && prev != "" && op.ID != "" {
			replaced[k.String()+" ("+prev+" and "+op.ID+")"] = op.Done
		}
		produced[k], at[k] = op.ID, op.Done
	}
	consumed := map[tpo]int{}
	for _, e := range r.ix.Consumed {
		if e.Type == history.Fail {
			continue
		}
		k := tpo{e.Topic, e.Partition, e.Offset}
		consumed[k]++
		if id, ok := produced[k]; ok && id != "" && e.ID != "" && id != e.ID {
			replaced[k.String()+" (produced "+id+", consumed "+e.ID+")"] = at[k]
		}
	}
	unconsumed := map[string]time.Duration{}
	redelivered := 0
	for k := range produced {
		switch n := consumed[k]; {
		case n == 0:
			unconsumed[k.String()] = at[k]
		case n > 1:
			redelivered++
		}
	}
	b.counts["acknowledged"] = int64(len(produced))
	b.counts["consumed"] = int64(len(consumed))
	b.counts["unconsumed"] = int64(len(unconsumed))
	b.counts["offsetReused"] = int64(len(replaced))
	b.counts["redelivered"] = int64(redelivered)
	if len(produced) == 0 {
		b.add(Finding{Severity: SevUnknown, Message: "the history has no acknowledged Kafka record, so the round trip cannot be checked"})
		return b.finish("no acknowledged Kafka record in the history")
	}
	// a record the final read did not reach may be in Kafka: unknown
	sev, missing, summary := SevFail, "never consumed (topic/partition@offset)", "never consumed"
	if failed := consumeAllFailed(r.ix); failed != "" {
		sev, missing, summary = SevUnknown, "not read back: the run's final read of Kafka failed ("+failed+")", "not read back (the final read of Kafka failed)"
	}
	b.grouped(sev, unconsumed, func(n int, fault string) string {
		return fmt.Sprintf("%s acknowledged by the broker %s %s", plural(n, "record", "records"), fault, missing)
	})
	b.grouped(SevFail, replaced, func(n int, fault string) string {
		return fmt.Sprintf("%d acknowledged offsets %s later held a different record: the log was truncated", n, fault)
	})
	if redelivered > 0 {
		b.add(Finding{Severity: SevInfo, Message: fmt.Sprintf("%s consumed more than once (at-least-once delivery; harmless if handlers are idempotent)", plural(redelivered, "record", "records"))})
	}
	for i := range r.ix.Faults {
		b.faultSummary(i, "every record acknowledged in this window was consumed")
	}
	if b.res.Status == Pass {
		return b.finish(fmt.Sprintf("all %d acknowledged records were consumed", len(produced)))
	}
	return b.finish(fmt.Sprintf("%d of %d acknowledged records %s; %d offsets reused", len(unconsumed), len(produced), summary, len(replaced)))
}

// consumeAllFailed is why the run's final read of Kafka failed, "" when
// it did not.
func consumeAllFailed(ix *evidence.Index) string {
	for _, p := range ix.Phases {
		if after, ok := strings.CutPrefix(p.Error, history.ConsumeAllFailed); ok {
			return after
		}
	}
	return ""
}
