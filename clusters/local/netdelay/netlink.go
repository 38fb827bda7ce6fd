package netdelay

import (
	"errors"
	"syscall"

	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// request sends one NFQNL_MSG_CONFIG request and waits for its
// acknowledgement, scheduling any packet that arrives meanwhile.
func (d *Delayer) request(attrs ...netfilter.Attribute) error {
	msg, err := configMessage(d.cfg.Queue, attrs...)
	if err != nil {
		return err
	}
	d.reqSeq++
	msg.Header.Sequence = d.reqSeq
	msg.Header.Length = uint32(unix.NLMSG_HDRLEN + len(msg.Data))
	b, err := msg.MarshalBinary()
	if err != nil {
		return err
	}
	if err := d.send(b); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := d.recv(buf, true)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq != d.reqSeq {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("short netlink acknowledgement")
			}
			if errno := -int32(nativeUint32(m.Data)); errno != 0 {
				return syscall.Errno(errno)
			}
			d.handle(buf[:n]) // packets that came with the ack
			return nil
		}
		d.handle(buf[:n])
	}
}

// recv reads one datagram; with wait it blocks (through the runtime
// poller, so deadlines and Close interrupt it).
func (d *Delayer) recv(buf []byte, wait bool) (int, error) {
	var n int
	var rerr error
	f := func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return !wait || rerr != unix.EAGAIN
	}
	if err := d.raw.Read(f); err != nil {
		return 0, err
	}
	return n, rerr
}

func (d *Delayer) send(b []byte) error {
	var serr error
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK}
	err := d.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, unix.MSG_DONTWAIT, to)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

func (d *Delayer) setsockopt(level, opt, value int) error {
	var serr error
	err := d.raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), level, opt, value)
	})
	return errors.Join(err, serr)
}
