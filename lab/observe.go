package lab

// Unknown is the observed state of a probe that ran out of time.
const Unknown = "unknown"

// Observe maps what the engines report of a service to the spec's verdict
// vocabulary, so that it can be compared with analyze's prediction: down
// when no member answers, read-only when some do but writes would be
// refused, ok when every member is healthy, degraded otherwise. The state
// changes only on evidence: when writes look refused but a running member
// ran out of time answering, the refusal may be nothing but its missing
// answer, so the state is Unknown. A member that answered (no quorum, not
// primary) or is not running (killed, powered off) is evidence; writes
// accepted by the others are too, whatever the slow member.
func Observe(si ServiceStatus) (observed string, membersUp int, writable bool) {
	anyUp, timedOut := false, si.TimedOut
	for _, m := range si.Members {
		anyUp = anyUp || m.Up
		timedOut = timedOut || m.TimedOut
		if m.Healthy {
			membersUp++
		}
	}
	switch {
	case !si.Writable && timedOut:
		return Unknown, membersUp, false
	case !anyUp:
		return "down", 0, false
	case !si.Writable:
		return "read-only", membersUp, false
	case membersUp == len(si.Members):
		return "ok", membersUp, true
	}
	return "degraded", membersUp, true
}
