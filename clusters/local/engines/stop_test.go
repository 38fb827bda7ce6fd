package engines

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every engine's StopMember refuses a member that does not exist (galera
// indexed past the end before), and Stop's two orders are what they say.
func TestMemberBoundsAndStopOrders(t *testing.T) {
	c := &Cluster{Service: "db", Members: []Member{{Name: "db-0"}, {Name: "db-1"}, {Name: "db-2"}}}
	_, err := c.Member(3)
	require.EqualError(t, err, "db: no member 3")
	_, err = c.Member(-1)
	require.Error(t, err)
	m, err := c.Member(1)
	require.NoError(t, err)
	require.Equal(t, "db-1", m.Name)

	var order []int
	require.NoError(t, StopLastFirst(c, func(i int) error { order = append(order, i); return nil }))
	require.Equal(t, []int{2, 1, 0}, order)

	var mu sync.Mutex
	order = nil
	err = StopAll(c, func(i int) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, i)
		if i == 1 {
			return errors.New("stuck")
		}
		return nil
	})
	require.EqualError(t, err, "stuck")
	slices.Sort(order)
	require.Equal(t, []int{0, 1, 2}, order)
}
