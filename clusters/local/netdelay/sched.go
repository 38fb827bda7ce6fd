package netdelay

// verdict values of the kernel's netfilter verdict (NF_DROP, NF_ACCEPT).
const (
	verdictDrop   uint32 = 0
	verdictAccept uint32 = 1
)

// pending is one queued packet waiting for its verdict.
type pending struct {
	due     int64  // nanoseconds since the Delayer's epoch (monotonic)
	seq     uint64 // arrival order: breaks ties so equal delays keep FIFO order
	id      uint32 // kernel packet id
	verdict uint32
}

// schedule is a min-heap of pending verdicts ordered by due time. It is
// typed by hand (not container/heap) so pushes and pops do not box values:
// the scheduler sits on the path of every delayed packet.
type schedule struct {
	items []pending
	seq   uint64
}

func (s *schedule) less(i, j int) bool {
	a, b := &s.items[i], &s.items[j]
	if a.due != b.due {
		return a.due < b.due
	}
	return a.seq < b.seq
}

// push adds a packet and reports whether it became the earliest one (the
// scheduler then has to re-arm its timer).
func (s *schedule) push(due int64, id, verdict uint32) bool {
	s.seq++
	s.items = append(s.items, pending{due: due, seq: s.seq, id: id, verdict: verdict})
	i := len(s.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s.items[i], s.items[p] = s.items[p], s.items[i]
		i = p
	}
	return i == 0
}

func (s *schedule) len() int { return len(s.items) }

// next returns the earliest due time; ok is false when nothing is pending.
func (s *schedule) next() (due int64, ok bool) {
	if len(s.items) == 0 {
		return 0, false
	}
	return s.items[0].due, true
}

func (s *schedule) pop() pending {
	top := s.items[0]
	last := len(s.items) - 1
	s.items[0] = s.items[last]
	s.items = s.items[:last]
	i, n := 0, last
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s.items[i], s.items[m] = s.items[m], s.items[i]
		i = m
	}
	return top
}

// popDue appends every packet due at or before now to out, in due order.
func (s *schedule) popDue(now int64, out []pending) []pending {
	for len(s.items) > 0 && s.items[0].due <= now {
		out = append(out, s.pop())
	}
	return out
}
