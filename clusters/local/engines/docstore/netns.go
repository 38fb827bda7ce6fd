package docstore

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// ContextDialer is what net.Dialer, the mongo driver and http.Transport use.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Dialer connects to a member from where its own clients would: inside the
// member's network namespace when it has one (the lab's addresses need not
// be routed from chaosloop's namespace). Use it with the mongo driver's
// options.Client().SetDialer.
func Dialer(m engines.Member) ContextDialer {
	if m.NetNS == "" {
		return &net.Dialer{}
	}
	return nsDialer{ns: m.NetNS}
}

type nsDialer struct{ ns string }

// DialContext creates the socket on a thread switched into the namespace; a
// socket stays in the namespace it was created in, so the connection can
// then be used from any thread.
func (d nsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", d.ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("netns %s: %w", d.ns, err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", d.ns, err)}
			return
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		ch <- result{c, err}
		// A thread that cannot go back must not run other goroutines:
		// leaving it locked makes the runtime end it with this goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.c, r.err
}

// dialer is how chaosloop reaches member m: on a real cluster through the
// cluster's dialer (a port-forward to the member's node), else as Dialer.
func dialer(c *engines.Cluster, m engines.Member) ContextDialer {
	if c.Remote() {
		return dialFunc(c.Dialer())
	}
	return Dialer(m)
}

// dialFunc is an engines.DialFunc as a ContextDialer.
type dialFunc engines.DialFunc

func (f dialFunc) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f(ctx, network, address)
}

func httpClient(c *engines.Cluster, m engines.Member) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:       dialer(c, m).DialContext,
		DisableKeepAlives: true,
	}}
}
