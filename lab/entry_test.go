package lab

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRotate: dials go through the usable entries in turn; an entry a
// dial failed through is passed over while another is left, and used
// again when it is the only one; with none usable the dial says why.
func TestRotate(t *testing.T) {
	var tried []int
	down := map[int]bool{}
	failing := map[int]bool{}
	d := Rotate(Entries{
		N:      3,
		Usable: func(i int) bool { return !down[i] },
		Through: func(_ context.Context, i int, _, _ string) (net.Conn, error) {
			tried = append(tried, i)
			if failing[i] {
				return nil, errors.New("dark")
			}
			c, s := net.Pipe()
			s.Close()
			return c, nil
		},
		Name: func(i int) string { return []string{"a", "b", "c"}[i] },
		None: "no node has power",
	})
	dial := func() error {
		c, err := d(t.Context(), "tcp", "198.18.0.1:1")
		if c != nil {
			c.Close()
		}
		return err
	}
	for range 3 {
		require.NoError(t, dial())
	}
	require.Equal(t, []int{1, 2, 0}, tried, "round robin")

	tried, failing[1] = nil, true
	require.EqualError(t, dial(), "from b: dark")
	for range 4 {
		require.NoError(t, dial())
	}
	require.Equal(t, []int{1, 2, 0, 2, 2}, tried, "b passed over after its failure: its turn goes to the next")

	tried, down[0], down[2] = nil, true, true
	require.Error(t, dial())
	require.Equal(t, []int{1}, tried, "the failed entry is tried again when it is the only one left")

	down[1] = true
	require.EqualError(t, dial(), "dial 198.18.0.1:1: no node has power")
}
