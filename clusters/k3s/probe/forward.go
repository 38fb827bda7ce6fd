package probe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/chaosloop/chaosloop/clusters/k3s"
)

// Forwarder dials a member's address through the API server: a port-
// forward of the member's pod, on loopback, made for the one connection
// and ended with it. A hostNetwork pod's forward lands in its node's
// network namespace, so deploy mode's members are dialed the same way. A forward per connection, not one kept per pod: a
// member cut off and back would otherwise be dialed through a stream to
// its kubelet that died with the cut.
type Forwarder struct {
	Cluster   *k3s.Cluster
	Namespace string
	Log       *slog.Logger
	// PodOf, when set, finds the pod of the member at an address when it
	// is dialed (deploy mode's members, whose pods are made anew on each
	// start); unset, the pods SetPods gave are used.
	PodOf func(ctx context.Context, addr netip.Addr) (string, error)

	mu sync.Mutex
	// pods are the attached pods by address, as last observed: an
	// engine's cached client dials through the forwarder again later,
	// maybe to a pod made anew.
	pods map[netip.Addr]string
}

// SetPods says which pod has each member's address.
func (f *Forwarder) SetPods(pods map[netip.Addr]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = pods
}

func (f *Forwarder) podOf(ctx context.Context, addr netip.Addr) (string, error) {
	if f.PodOf != nil {
		return f.PodOf(ctx, addr)
	}
	f.mu.Lock()
	pod, ok := f.pods[addr]
	f.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("no attached member's pod has address %s", addr)
	}
	return pod, nil
}

// Dial is an engines.DialFunc.
func (f *Forwarder) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	pod, err := f.podOf(ctx, ap.Addr())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	if f.Cluster.Config == nil {
		return nil, fmt.Errorf("dial %s: no client configuration to forward through", address)
	}
	// A round tripper per dial: client-go's SPDY round tripper keeps the
	// one connection it upgraded (SpdyRoundTripper.conn), so it cannot
	// serve two forwards.
	rt, upgrader, err := spdy.RoundTripperFor(f.Cluster.Config)
	if err != nil {
		return nil, err
	}
	u := f.Cluster.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.Namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	errOut := &logWriter{log: f.Log, pod: f.Namespace + "/" + pod}
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(int(ap.Port()))}, stop, ready, io.Discard, errOut)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	select {
	case <-ready:
	case err := <-done:
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", f.Namespace, pod, ap.Port(), err)
	case <-ctx.Done():
		end()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", f.Namespace, pod, ap.Port(), ctx.Err())
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		end()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: no local port: %v", f.Namespace, pod, ap.Port(), err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
	if err != nil {
		end()
		return nil, err
	}
	return &forwardedConn{Conn: conn, end: end}, nil
}

// forwardedConn ends its port-forward when it is closed.
type forwardedConn struct {
	net.Conn
	end func()
}

func (c *forwardedConn) Close() error {
	err := c.Conn.Close()
	c.end()
	return err
}

// logWriter logs what port-forward reports of its streams (a member's
// port refusing, a stream reset): a debug line, since the probe's own
// error says what matters.
type logWriter struct {
	log *slog.Logger
	pod string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.log.Debug("port-forward", "pod", w.pod, "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
