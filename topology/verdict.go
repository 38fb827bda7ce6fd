package topology

import (
	"fmt"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Verdict is a service's state under a failure, ordered from best to worst.
type Verdict uint8

const (
	OK Verdict = iota
	Degraded
	ReadOnly
	Down
)

var verdictNames = [...]string{"ok", "degraded", "read-only", "down"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// ParseVerdict is the inverse of String.
func ParseVerdict(s string) (Verdict, error) {
	for i, n := range verdictNames {
		if n == s {
			return Verdict(i), nil
		}
	}
	return 0, fmt.Errorf("unknown verdict %q", s)
}

// MarshalText writes the verdict's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a verdict's name.
func (v *Verdict) UnmarshalText(b []byte) error {
	p, err := ParseVerdict(string(b))
	*v = p
	return err
}

// Judgement is one service's verdict under one failure.
type Judgement struct {
	Verdict Verdict
	// MembersUp counts members that are up and in the serving component.
	MembersUp int32
	// LossPossible: acknowledged writes may be lost (async promotion).
	LossPossible bool
}

// Judge applies section 5's rules to one service in the current state.
func (s *State) Judge(sv *Service) Judgement {
	n := len(sv.Members)
	up, comp := s.up[:n], s.comp[:n]
	anyUp := false
	for i, node := range sv.Members {
		up[i] = s.Up(node)
		if up[i] {
			anyUp = true
			comp[i] = s.Component(node)
		}
	}
	if !anyUp {
		return Judgement{Verdict: Down}
	}
	// The serving component holds the most up members; on a tie, the one
	// holding the lowest-numbered member (the first to reach the maximum
	// when members are visited in order).
	serving, best := int32(-1), int32(0)
	for i := range n {
		if !up[i] {
			continue
		}
		c := comp[i]
		if s.counts[c] == 0 {
			s.touched = append(s.touched, c)
		}
		s.counts[c]++
	}
	for i := range n {
		if up[i] && s.counts[comp[i]] > best {
			serving, best = comp[i], s.counts[comp[i]]
		}
	}
	for _, c := range s.touched {
		s.counts[c] = 0
	}
	s.touched = s.touched[:0]

	in := func(i int) bool { return up[i] && comp[i] == serving }
	j := Judgement{MembersUp: best}
	all := int(best) == n
	full := OK
	if !all {
		full = Degraded
	}
	switch {
	case sv.Kind == scenarios.KindKafka:
		j.Verdict = s.judgeKafka(sv, up, comp, serving, full, all)
	case sv.Quorum:
		if 2*int(best) > n {
			j.Verdict = full
		} else {
			j.Verdict = ReadOnly
		}
	case sv.Async:
		switch {
		case in(0):
			j.Verdict = full
		case anyReplicaUp(up):
			j.Verdict, j.LossPossible = ReadOnly, true
		default:
			j.Verdict = Down
		}
	case sv.Kind == scenarios.KindRedis:
		switch {
		case in(0):
			j.Verdict = full
		case 2*int(best) > n:
			// Sentinel fails over to a replica; what it had not received
			// is gone.
			j.Verdict, j.LossPossible = Degraded, true
		default:
			j.Verdict = Down
		}
	default: // stateless
		j.Verdict = full
	}
	return j
}

// judgeKafka applies kafka's rules: acks=all writes need minInSync
// replicas of every partition in the serving component, a partition with no
// replica up is down, and without a controller quorum leadership and ISRs
// are frozen, so a partition whose leader is cut off is down and one with any
// replica cut off is read-only.
func (s *State) judgeKafka(sv *Service, up []bool, comp []int32, serving int32, full Verdict, all bool) Verdict {
	in := func(i int) bool { return up[i] && comp[i] == serving }
	v := full
	for _, reps := range sv.Partitions {
		anyRep, inSync := false, 0
		for _, m := range reps {
			if up[m] {
				anyRep = true
			}
			if in(m) {
				inSync++
			}
		}
		if !anyRep {
			return Down
		}
		if inSync < sv.MinInSync {
			v = ReadOnly
		}
	}
	// With every broker serving no replica is cut off, so the controller
	// cannot matter (and the common case skips looking it up).
	if all || s.controllerQuorum(sv, serving) {
		return v
	}
	for _, reps := range sv.Partitions {
		if !in(reps[0]) {
			return Down
		}
		for _, m := range reps[1:] {
			if !in(m) {
				v = max(v, ReadOnly)
			}
		}
	}
	return v
}

// controllerQuorum reports whether a strict majority of kafka's controller
// members is up and in kafka's serving component.
func (s *State) controllerQuorum(sv *Service, serving int32) bool {
	n := 0
	for _, node := range sv.Controller {
		if s.Up(node) && s.Component(node) == serving {
			n++
		}
	}
	return 2*n > len(sv.Controller)
}

func anyReplicaUp(up []bool) bool {
	for _, u := range up[1:] {
		if u {
			return true
		}
	}
	return false
}
