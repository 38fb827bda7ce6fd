package lab

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Entries are the ways a client enters a lab (the nodes of a service), as
// a load balancer in front of them sees them: Usable says whether entry i
// can be tried at all (its node has power), Through dials address through
// it, Name names it in errors.
type Entries struct {
	N       int
	Usable  func(i int) bool
	Through func(ctx context.Context, i int, network, address string) (net.Conn, error)
	Name    func(i int) string
	// None is the error text when no entry is usable.
	None string
}

// EntryHoldoff: an entry a dial failed through is passed over this long,
// as a load balancer's passive health check would (only while another
// entry is left).
const EntryHoldoff = 5 * time.Second

// Rotate is a DialFunc through e: one attempt per dial, through the next
// usable entry in rotation that has not just failed a dial (else the one
// that failed longest ago). A dial whose target is dead (a broker that
// lost power) then fails after one attempt, and the client's own retry
// goes through the next entry. Trying every entry in turn made such a dial
// cost up to 12 s, which held the client's Kafka producer on a dead
// leader (franz-go dials it again before each metadata refresh) for the
// whole power-off (measured on the local lab: 2,097 transfers ended
// unknown, "produce: context deadline exceeded").
func Rotate(e Entries) DialFunc {
	var (
		next   atomic.Uint32
		mu     sync.Mutex
		failed = make([]time.Time, e.N)
	)
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		start := int(next.Add(1))
		pick, oldest := -1, -1
		mu.Lock()
		for j := range e.N {
			k := (start + j) % e.N
			if !e.Usable(k) {
				continue
			}
			if time.Since(failed[k]) >= EntryHoldoff {
				pick = k
				break
			}
			if oldest < 0 || failed[k].Before(failed[oldest]) {
				oldest = k
			}
		}
		mu.Unlock()
		if pick < 0 {
			pick = oldest
		}
		if pick < 0 {
			return nil, fmt.Errorf("dial %s: %s", address, e.None)
		}
		c, err := e.Through(ctx, pick, network, address)
		if err == nil {
			return c, nil
		}
		mu.Lock()
		failed[pick] = time.Now()
		mu.Unlock()
		return nil, fmt.Errorf("from %s: %w", e.Name(pick), err)
	}
}
