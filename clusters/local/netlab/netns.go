package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named namespaces.
const netnsDir = "/run/netns"

// inNetNS runs fn on an OS thread switched into the named network
// namespace (see InNetNSAt).
func inNetNS(name string, fn func() error) error {
	return InNetNSAt(filepath.Join(netnsDir, name), fn)
}

// InNetNSAt runs fn on an OS thread switched into the network namespace
// whose file is at path (/run/netns/NAME, /proc/PID/ns/net). Sockets fn
// creates stay in that namespace for their whole life, and files under
// /proc/sys/net it opens are that namespace's. If the thread cannot be
// switched back it is left locked, so the runtime retires it.
func InNetNSAt(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := setns(self); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("setns back from %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// DialIn opens a connection from inside namespace ns (see Lab.Dial).
func DialIn(ctx context.Context, ns string, d *net.Dialer, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var c net.Conn
	err := inNetNS(ns, func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// ListenIn opens a listener inside namespace ns (see Lab.Listen).
func ListenIn(ctx context.Context, ns, network, address string) (net.Listener, error) {
	var l net.Listener
	err := inNetNS(ns, func() error {
		var err error
		l, err = (&net.ListenConfig{}).Listen(ctx, network, address)
		return err
	})
	return l, err
}

// writeSysctls sets /proc/sys values inside namespace ns; keys use dots
// (net.ipv4.ip_forward). Keys absent in this kernel are skipped when
// optional says so.
func writeSysctls(ns string, kv [][2]string, optional map[string]bool) error {
	return inNetNS(ns, func() error {
		for _, e := range kv {
			p := "/proc/sys/" + dotsToSlashes(e[0])
			if err := os.WriteFile(p, []byte(e[1]), 0o644); err != nil {
				if optional[e[0]] && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return fmt.Errorf("sysctl %s=%s in %s: %w", e[0], e[1], ns, err)
			}
		}
		return nil
	})
}

func dotsToSlashes(k string) string {
	b := []byte(k)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}
