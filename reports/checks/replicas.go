package checks

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/history"
	"github.com/chaosloop/chaosloop/scenarios"
)

// replicas is check 4: after heal every replicated service's members hold
// the same data, and every acknowledged Redis and document-store write is
// still readable. Redis replicates asynchronously: a write acknowledged by
// a primary that is then cut off and replaced by Sentinel is gone, by
// design. Such a loss at a time analyze predicted acknowledgedLossPossible
// for the service (or within Options.LossLookback before it: replication
// lag) is reported but allowed; any other loss counts against
// expect.acknowledgedLoss (for each kind of write separately).
func (r *run) replicas() Result {
	b := r.newResult(CheckReplicas, "Replicas converged, acknowledged writes readable", Safety)
	var parts []string
	parts = append(parts, r.converged(b))
	parts = append(parts, r.writes(b, history.OpRedisSet, "Redis", scenarios.KindRedis, PartRedisKeys, func(f *history.Final) map[string]bool { return f.RedisKeys }))
	parts = append(parts, r.writes(b, history.OpBulk, "document-store", scenarios.KindMongoDB, PartBulk, func(f *history.Final) map[string]bool { return f.Bulk }))
	for i := range r.ix.Faults {
		b.faultSummary(i, "no unexpected loss attributed")
	}
	return b.finish(strings.Join(parts, "; "))
}

// converged compares the replica digests per service.
func (r *run) converged(b *builder) string {
	if why := r.readError(PartReplicas); why != "" {
		b.add(Finding{Severity: SevUnknown, Message: why})
		return "replicas: " + why
	}
	views := map[string][]history.ReplicaView{}
	for _, v := range r.in.Final.Replicas {
		views[v.Service] = append(views[v.Service], v)
	}
	if len(views) == 0 {
		b.add(Finding{Severity: SevUnknown, Message: "the final state has no replica digests"})
		return "replicas: no digests"
	}
	var ok, bad, unknown []string
	for _, svc := range keys(views) {
		vs := views[svc]
		slices.SortFunc(vs, func(a, b history.ReplicaView) int { return a.Member - b.Member })
		digests := map[string][]string{}
		var unread []string
		for _, v := range vs {
			if v.Error != "" {
				unread = append(unread, fmt.Sprintf("member %d: %s", v.Member, v.Error))
				continue
			}
			digests[v.Digest] = append(digests[v.Digest], fmt.Sprint(v.Member))
		}
		if why := r.serviceReadError(PartReplicas, svc); why != "" {
			unread = append(unread, why)
		}
		switch {
		case len(digests) > 1:
			var groups []string
			for _, d := range keys(digests) {
				groups = append(groups, fmt.Sprintf("members %s: %s", strings.Join(digests[d], ","), d))
			}
			b.add(Finding{Severity: SevFail, Service: svc, Message: fmt.Sprintf("%s replicas diverged after heal: %s", svc, strings.Join(groups, " | "))})
			bad = append(bad, svc)
		case len(unread) > 0:
			b.add(Finding{Severity: SevUnknown, Service: svc, Message: fmt.Sprintf("%s: cannot tell whether replicas converged: %s", svc, strings.Join(unread, "; "))})
			unknown = append(unknown, svc)
		default:
			ok = append(ok, svc)
		}
	}
	for _, sv := range r.t.Services {
		if sv.Kind != scenarios.KindStateless && len(views[sv.Name]) == 0 {
			b.add(Finding{Severity: SevWarning, Service: sv.Name, Message: sv.Name + ": no replica digest in the final state; convergence not checked"})
		}
	}
	b.counts["servicesConverged"] = int64(len(ok))
	b.counts["servicesDiverged"] = int64(len(bad))
	b.counts["servicesUnknown"] = int64(len(unknown))
	s := fmt.Sprintf("%d of %d services converged", len(ok), len(views))
	if len(bad) > 0 {
		s += " (diverged: " + strings.Join(bad, ", ") + ")"
	}
	if len(unknown) > 0 {
		s += " (unknown: " + strings.Join(unknown, ", ") + ")"
	}
	return s
}

type ackedWrite struct {
	id  string
	t   time.Duration
	svc string
}

// writes checks one kind of acknowledged write against what is readable.
func (r *run) writes(b *builder, op, label, kind, part string, readable func(*history.Final) map[string]bool) string {
	var acked []ackedWrite
	for _, o := range r.ix.Ops[op] {
		if o.Outcome == history.OK && o.ID != "" {
			acked = append(acked, ackedWrite{o.ID, o.Done, o.Field(func(e history.Event) string { return e.Service })})
		}
	}
	key := strings.ToLower(strings.ReplaceAll(label, "-", ""))
	b.counts[key+"Acknowledged"] = int64(len(acked))
	if len(acked) == 0 {
		b.add(Finding{Severity: SevWarning, Message: "no acknowledged " + label + " write in the history: not checked"})
		return label + ": no acknowledged writes"
	}
	why := r.readError(part)
	if why == "" && readable(r.in.Final) == nil {
		why = part + " not read"
	}
	if why != "" {
		b.add(Finding{Severity: SevUnknown, Message: label + " writes: " + why})
		return label + ": " + why
	}
	have := readable(r.in.Final)
	expected := map[string]time.Duration{}
	unexpected := map[string]time.Duration{}
	for _, w := range acked {
		if have[w.id] {
			continue
		}
		if r.lossPredicted(kind, w.svc, w.t) {
			expected[w.id] = w.t
		} else {
			unexpected[w.id] = w.t
		}
	}
	b.counts[key+"Lost"] = int64(len(expected) + len(unexpected))
	b.counts[key+"LostPredicted"] = int64(len(expected))
	b.grouped(SevWarning, expected, func(n int, fault string) string {
		return fmt.Sprintf("%s acknowledged %s %s gone: analyze predicted acknowledged loss possible here (async replication, failover), so this is the design's known cost",
			plural(n, label+" write", label+" writes"), fault, isAre(n))
	})
	budget := r.expect.AcknowledgedLoss
	sev := SevWarning
	if len(unexpected) > budget {
		sev = SevFail
	}
	b.grouped(sev, unexpected, func(n int, fault string) string {
		return fmt.Sprintf("%s acknowledged %s %s gone where analyze predicted no loss (allowed: %d)", plural(n, label+" write", label+" writes"), fault, isAre(n), budget)
	})
	s := fmt.Sprintf("%s: %d of %d acknowledged writes readable", label, len(acked)-len(expected)-len(unexpected), len(acked))
	if len(expected) > 0 {
		s += fmt.Sprintf(", %d lost as predicted", len(expected))
	}
	if len(unexpected) > 0 {
		s += fmt.Sprintf(", %d lost unexpectedly (allowed %d)", len(unexpected), budget)
	}
	return s
}

// lossPredicted reports whether analyze predicts acknowledged loss for the
// service (or, when the write names none, any service of the kind) at t or
// at a fault injected up to LossLookback after t.
func (r *run) lossPredicted(kind, svc string, t time.Duration) bool {
	times := []time.Duration{t}
	for _, f := range r.ix.Faults {
		if f.Injected && f.Inject > t && f.Inject <= t+r.o.LossLookback {
			times = append(times, f.Inject)
		}
	}
	for _, at := range times {
		js := r.predictAt(at)
		for _, sv := range r.t.Services {
			if (sv.Name == svc || svc == "" && sv.Kind == kind) && js[sv.Index].LossPossible {
				return true
			}
		}
	}
	return false
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
