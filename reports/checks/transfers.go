package checks

import (
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
)

// transferOutcome folds every operation on one transfer id: acknowledged if
// any completion was ok, failed if every completion was a refusal, unknown
// otherwise (a timeout or no completion at all).
type transferOutcome struct {
	id      string
	outcome string
	t       time.Duration // when acknowledged (or last seen)
	payer   string
	payee   string
	amount  int64
	curr    string
}

func (r *run) transferOutcomes() []transferOutcome {
	by := map[string]*transferOutcome{}
	var order []string
	for _, op := range r.ix.Ops[history.OpTransfer] {
		if op.ID == "" {
			continue
		}
		o := by[op.ID]
		if o == nil {
			o = &transferOutcome{id: op.ID, outcome: history.Fail}
			by[op.ID] = o
			order = append(order, op.ID)
		}
		if o.payer == "" {
			o.payer = op.Field(func(e history.Event) string { return e.Payer })
			o.payee = op.Field(func(e history.Event) string { return e.Payee })
			o.curr = op.Field(func(e history.Event) string { return e.Currency })
			o.amount = max(op.Inv.Amount, op.Comp.Amount)
		}
		switch {
		case op.Outcome == history.OK:
			if o.outcome != history.OK {
				o.t = op.Done
			}
			o.outcome = history.OK
		case op.Outcome == history.Info && o.outcome == history.Fail:
			o.outcome, o.t = history.Info, max(op.Done, op.Invoke)
		case o.outcome == history.Fail:
			o.t = op.Done
		}
	}
	out := make([]transferOutcome, 0, len(order))
	for _, id := range order {
		out = append(out, *by[id])
	}
	return out
}

// acknowledged is check 1: every acknowledged transfer is in the final
// ledger exactly once, COMMITTED, as it was sent; no refused transfer is
// COMMITTED. Unknown outcomes may go either way and are only counted.
func (r *run) acknowledged() Result {
	b := r.newResult(CheckAcknowledged, "No acknowledged transfer lost", Safety)
	ts := r.transferOutcomes()
	if why := r.readError(PartTransfers); why != "" || r.in.Final.Transfers == nil {
		if why == "" {
			why = "final state has no ledger transfers (not read)"
		}
		b.add(Finding{Severity: SevUnknown, Message: why})
		return b.finish("cannot tell: " + why)
	}
	ledger := r.in.Final.Transfers
	lost := map[string]time.Duration{}
	dup := map[string]time.Duration{}
	corrupt := map[string]time.Duration{}
	failedCommitted := map[string]time.Duration{}
	var acked, once, unknown, unknownCommitted, failed int
	var lostStates []string
	seen := map[string]bool{}
	for _, t := range ts {
		seen[t.id] = true
		lt, ok := ledger[t.id]
		present := ok && lt.Rows != 0
		switch t.outcome {
		case history.OK:
			acked++
			switch {
			case !present:
				lost[t.id] = t.t
			case lt.Rows > 1:
				dup[t.id] = t.t
			case lt.State != "COMMITTED":
				lost[t.id] = t.t
				lostStates = append(lostStates, t.id+"="+lt.State)
			default:
				once++
			}
			if present && !sameTransfer(t, lt) {
				corrupt[t.id] = t.t
			}
		case history.Fail:
			failed++
			if present && lt.State == "COMMITTED" {
				failedCommitted[t.id] = t.t
			}
		default:
			unknown++
			if present && lt.State == "COMMITTED" {
				unknownCommitted++
			}
			if present && lt.Rows > 1 {
				dup[t.id] = t.t
			}
		}
	}
	var strangers []string
	for id := range ledger {
		if !seen[id] {
			strangers = append(strangers, id)
		}
	}
	b.counts["acknowledged"] = int64(acked)
	b.counts["committedOnce"] = int64(once)
	b.counts["lost"] = int64(len(lost))
	b.counts["duplicated"] = int64(len(dup))
	b.counts["corrupted"] = int64(len(corrupt))
	b.counts["failed"] = int64(failed)
	b.counts["failedButCommitted"] = int64(len(failedCommitted))
	b.counts["unknownOutcome"] = int64(unknown)
	b.counts["unknownCommitted"] = int64(unknownCommitted)
	b.counts["ledgerTransfers"] = int64(len(ledger))
	b.counts["ledgerNotInHistory"] = int64(len(strangers))

	budget := r.expect.AcknowledgedLoss
	sev := SevWarning
	if len(lost) > budget {
		sev = SevFail
	}
	b.grouped(sev, lost, func(n int, fault string) string {
		return fmt.Sprintf("%s acknowledged %s, then missing or not COMMITTED in the final ledger (allowed: %d in all)",
			plural(n, "transfer", "transfers"), fault, budget)
	})
	if len(lostStates) > 0 {
		slices.Sort(lostStates)
		list, more := r.ids(lostStates)
		b.add(Finding{Severity: SevInfo, Message: "acknowledged transfers the ledger holds in another state (id=state)", IDs: list, MoreIDs: more})
	}
	b.grouped(SevFail, dup, func(n int, fault string) string {
		return fmt.Sprintf("%s stored more than once in the ledger (%s)", plural(n, "transfer", "transfers"), fault)
	})
	b.grouped(SevFail, corrupt, func(n int, fault string) string {
		return fmt.Sprintf("%s stored with a different payer, payee, amount or currency than sent (%s)", plural(n, "transfer", "transfers"), fault)
	})
	b.grouped(SevFail, failedCommitted, func(n int, fault string) string {
		return fmt.Sprintf("%s refused to the client yet COMMITTED in the ledger (%s)", plural(n, "transfer", "transfers"), fault)
	})
	if unknown > 0 {
		b.add(Finding{Severity: SevInfo, Message: fmt.Sprintf("%d of %s with unknown outcome (timeout, lost connection) ended COMMITTED; not counted as lost either way",
			unknownCommitted, plural(unknown, "transfer", "transfers"))})
	}
	if len(strangers) > 0 {
		list, more := r.ids(strangers)
		b.add(Finding{Severity: SevWarning, Message: fmt.Sprintf("%s in the ledger that this run's history never sent (a reused lab?)", plural(len(strangers), "transfer", "transfers")), IDs: list, MoreIDs: more})
	}
	if acked == 0 {
		b.add(Finding{Severity: SevUnknown, Message: "no transfer was acknowledged, so there is nothing to check (a vacuous pass is not a pass)"})
		return b.finish("no transfer was acknowledged")
	}
	for i := range r.ix.Faults {
		b.faultSummary(i, "no acknowledged transfer lost")
	}
	summary := fmt.Sprintf("%d of %d acknowledged transfers are in the ledger once, COMMITTED", once, acked)
	if len(lost) > 0 {
		summary += fmt.Sprintf("; %d lost (allowed %d)", len(lost), budget)
	}
	if len(dup)+len(corrupt)+len(failedCommitted) > 0 {
		summary += fmt.Sprintf("; %d duplicated, %d altered, %d refused-but-committed", len(dup), len(corrupt), len(failedCommitted))
	}
	summary += fmt.Sprintf("; %d unknown outcomes (%d committed)", unknown, unknownCommitted)
	return b.finish(summary)
}

func sameTransfer(t transferOutcome, lt history.LedgerTransfer) bool {
	eq := func(a, b string) bool { return a == "" || b == "" || a == b }
	return eq(t.payer, lt.Payer) && eq(t.payee, lt.Payee) && eq(t.curr, lt.Currency) && (t.amount == 0 || lt.Amount == 0 || t.amount == lt.Amount)
}
