package checks

import (
	"fmt"
	"slices"
	"time"

	"github.com/chaosloop/chaosloop/history"
)

// The position model (after central-ledger): a prepare reserves, raising
// the payer's position by the amount (a "reserve" change row); fulfil
// commits, lowering the payee's position by the amount ("commit"); an
// abort gives the payer's reservation back ("abort", −amount). So for each
// currency, Σ positions = initial funding + Σ amounts of transfers still
// RESERVED: with nothing pending, positions sum to the initial funding
// (zero unless Options.InitialPositions says otherwise). Each reserve must
// keep the payer's position within its net debit cap, and each transfer
// may move positions at most once per kind.

// money is check 2, Jepsen's bank test for the ledger.
func (r *run) money() Result {
	b := r.newResult(CheckMoney, "Money conserved", Safety)
	for _, part := range []string{PartPositions, PartPositionChanges, PartTransfers} {
		if why := r.readError(part); why != "" {
			b.add(Finding{Severity: SevUnknown, Message: why})
			return b.finish("cannot tell: " + why)
		}
	}
	fin := r.in.Final
	if fin.Positions == nil {
		b.add(Finding{Severity: SevUnknown, Message: "final state has no positions (not read)"})
		return b.finish("cannot tell: positions not read")
	}
	when := map[string]time.Duration{} // transfer id → invocation, for blame
	for _, op := range r.ix.Ops[history.OpTransfer] {
		if _, ok := when[op.ID]; !ok && op.Invoked {
			when[op.ID] = op.Invoke
		}
	}

	// 1. Sums per currency.
	sum := map[string]int64{}
	for _, p := range fin.Positions {
		sum[p.Currency] += p.Value
	}
	pending := map[string]int64{}
	for _, t := range fin.Transfers {
		if t.State == "RESERVED" {
			pending[t.Currency] += t.Amount
		}
	}
	currs := keys(sum)
	for c := range pending {
		if _, ok := sum[c]; !ok {
			currs = append(currs, c)
		}
	}
	slices.Sort(currs)
	imbalances := 0
	for _, c := range currs {
		want := r.o.InitialPositions[c] + pending[c]
		if sum[c] != want {
			imbalances++
			b.add(Finding{Severity: SevFail, Message: fmt.Sprintf("%s: positions sum to %d, want %d (initial %d + %d still reserved): %+d created or destroyed",
				c, sum[c], want, r.o.InitialPositions[c], pending[c], sum[c]-want)})
		}
	}
	b.counts["currencies"] = int64(len(currs))
	b.counts["participants"] = int64(len(fin.Positions))

	// 2. Each participant's change rows must chain into its final position,
	// and no reserve may pass the net debit cap.
	type acct struct{ p, c string }
	caps := map[acct]int64{}
	final := map[acct]int64{}
	for _, p := range fin.Positions {
		caps[acct{p.Participant, p.Currency}] = p.NetDebitCap
		final[acct{p.Participant, p.Currency}] = p.Value
	}
	last := map[acct]int64{}
	seenAcct := map[acct]bool{}
	overCap := map[string]time.Duration{}
	var overCapDetail []string
	brokenChain := map[acct]int{}
	type moveKey struct{ id, kind string }
	moves := map[moveKey]int{}
	for _, pc := range fin.PositionChanges {
		a := acct{pc.Participant, pc.Currency}
		if seenAcct[a] && last[a]+pc.Change != pc.Value {
			brokenChain[a]++
		}
		seenAcct[a], last[a] = true, pc.Value
		if pc.Kind == "reserve" && pc.Change > 0 {
			if c, ok := caps[a]; ok && pc.Value > c {
				overCap[pc.TransferID] = when[pc.TransferID]
				overCapDetail = append(overCapDetail, fmt.Sprintf("%s: %s %s position %d > cap %d", pc.TransferID, pc.Participant, pc.Currency, pc.Value, c))
			}
		}
		moves[moveKey{pc.TransferID, pc.Kind}]++
	}
	b.counts["positionChanges"] = int64(len(fin.PositionChanges))
	var chainMsgs []string
	for a := range seenAcct {
		if v, ok := final[a]; ok && v != last[a] {
			// The difference says how much money appeared or vanished
			// there, so a position edited or moved outside the ledger's
			// transactions can be traced.
			chainMsgs = append(chainMsgs, fmt.Sprintf("%s %s: last change row says %d, position says %d (%+d not accounted for by any change row)", a.p, a.c, last[a], v, v-last[a]))
		}
		if n := brokenChain[a]; n > 0 {
			chainMsgs = append(chainMsgs, fmt.Sprintf("%s %s: %d change rows do not follow from the previous value", a.p, a.c, n))
		}
	}
	slices.Sort(chainMsgs)
	for _, m := range chainMsgs {
		b.add(Finding{Severity: SevFail, Message: "position history inconsistent: " + m})
	}
	b.counts["overCap"] = int64(len(overCap))
	if len(overCap) > 0 {
		b.grouped(SevFail, overCap, func(n int, fault string) string {
			return fmt.Sprintf("%s put the payer beyond its net debit cap (%s)", plural(n, "reservation", "reservations"), fault)
		})
		slices.Sort(overCapDetail)
		list, more := r.ids(overCapDetail)
		b.add(Finding{Severity: SevInfo, Message: "reservations beyond the cap (transfer: participant currency position > cap)", IDs: list, MoreIDs: more})
	}

	// 3. No transfer moved a position twice, or both committed and aborted,
	// and a COMMITTED transfer moved both positions.
	twice := map[string]time.Duration{}
	var twiceDetail []string
	for k, n := range moves {
		if n > 1 {
			twice[k.id] = when[k.id]
			twiceDetail = append(twiceDetail, fmt.Sprintf("%s: %d %s rows", k.id, n, k.kind))
		}
	}
	both := map[string]time.Duration{}
	unmoved := map[string]time.Duration{}
	for id, t := range fin.Transfers {
		if moves[moveKey{id, "commit"}] > 0 && moves[moveKey{id, "abort"}] > 0 {
			both[id] = when[id]
		}
		if t.State == "COMMITTED" && (moves[moveKey{id, "reserve"}] == 0 || moves[moveKey{id, "commit"}] == 0) {
			unmoved[id] = when[id]
		}
	}
	b.counts["movedTwice"] = int64(len(twice))
	b.counts["committedAndAborted"] = int64(len(both))
	b.counts["committedWithoutMoves"] = int64(len(unmoved))
	b.grouped(SevFail, twice, func(n int, fault string) string {
		return fmt.Sprintf("%s moved a position more than once for the same step: a duplicate was processed (%s)", plural(n, "transfer", "transfers"), fault)
	})
	if len(twiceDetail) > 0 {
		slices.Sort(twiceDetail)
		list, more := r.ids(twiceDetail)
		b.add(Finding{Severity: SevInfo, Message: "duplicate position moves", IDs: list, MoreIDs: more})
	}
	b.grouped(SevFail, both, func(n int, fault string) string {
		return fmt.Sprintf("%s both committed and aborted (%s)", plural(n, "transfer", "transfers"), fault)
	})
	b.grouped(SevFail, unmoved, func(n int, fault string) string {
		return fmt.Sprintf("%s COMMITTED without a reserve and a commit position change (%s)", plural(n, "transfer", "transfers"), fault)
	})
	for i := range r.ix.Faults {
		b.faultSummary(i, "no duplicate or over-cap move attributed")
	}
	if b.res.Status == Pass {
		return b.finish(fmt.Sprintf("positions balance in %s (%d participants, %d change rows); no cap exceeded, no duplicate move",
			plural(len(currs), "currency", "currencies"), len(fin.Positions), len(fin.PositionChanges)))
	}
	return b.finish(fmt.Sprintf("%d currency imbalances, %d history inconsistencies, %d over-cap reservations, %d duplicate moves, %d committed-and-aborted, %d committed without moves",
		imbalances, len(chainMsgs), len(overCap), len(twice), len(both), len(unmoved)))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
