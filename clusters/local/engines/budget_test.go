package engines

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWithMargin(t *testing.T) {
	require.Equal(t, Budget{7 * time.Second, "x; + 5 s margin"}, WithMargin(2*time.Second, "x"))
	require.Equal(t, Budget{22500 * time.Millisecond, "y; + 50%"}, WithMargin(15*time.Second, "y"))
}

// A probe running out of time is a timeout; an answer refusing the
// connection (the member is not there) is not.
func TestIsTimeout(t *testing.T) {
	require.True(t, IsTimeout(fmt.Errorf("query: %w", context.DeadlineExceeded)))
	require.True(t, IsTimeout(&net.OpError{Op: "read", Err: timeoutErr{}}))
	require.False(t, IsTimeout(nil))
	require.False(t, IsTimeout(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}))
	require.False(t, IsTimeout(errors.New("no quorum")))
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
