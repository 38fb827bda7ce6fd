package lab

import (
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FailFastDialer returns a TCP dialer whose connections die within about
// userTimeout when the path to the peer goes dark (a cut link, an isolated
// site, a powered-off node: packets vanish, no RST ever comes): data left
// unacknowledged that long (TCP_USER_TIMEOUT) or an idle peer silent to
// keepalive probes ends the connection, so clients reconnect elsewhere
// instead of waiting for the kernel's ~15 minutes of retransmissions.
func FailFastDialer(userTimeout time.Duration) *net.Dialer {
	ms := int(userTimeout / time.Millisecond)
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     userTimeout / 2,
			Interval: userTimeout / 4,
			Count:    2,
		},
		Control: func(network, address string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}
