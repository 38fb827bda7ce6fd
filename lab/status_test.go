package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

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
