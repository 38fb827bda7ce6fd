package agent

import (
	"net"
	"syscall"
	"time"
)

// ExemptDialer dials with ExemptMark on every socket (SO_MARK, which
// NET_ADMIN allows): the agent's client to the API server uses it, so its
// own isolate rules never cut it off (see ExemptMark).
func ExemptDialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, ExemptMark)
			}); err != nil {
				return err
			}
			return serr
		},
	}
}
