package agent

import (
	"net"
	"syscall"
	"time"
)

// ExemptDialer dials with ExemptMark (SO_MARK, which NET_ADMIN allows) and
// DSCP ExemptDSCP on every socket: the agent's client to the API server
// uses it, so no agent's isolate rules cut it off (see ExemptMark).
func ExemptDialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, ExemptMark)
				if serr == nil {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TOS, ExemptDSCP<<2)
				}
			}); err != nil {
				return err
			}
			return serr
		},
	}
}
