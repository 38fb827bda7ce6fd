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

// forwarder dials a member's address through the API server: a port-
// forward of the member's pod, on loopback, made for the one connection
// and ended with it. A forward per connection, not one kept per pod: a
// member cut off and back would otherwise be dialed through a stream to
// its kubelet that died with the cut.
type forwarder struct {
	cluster   *k3s.Cluster
	namespace string
	log       *slog.Logger

	mu sync.Mutex
	// pods are the attached pods by address, as last observed: an
	// engine's cached client dials through the forwarder again later,
	// maybe to a pod made anew.
	pods map[netip.Addr]string
}

func (f *forwarder) setPods(pods map[netip.Addr]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = pods
}

// dial is an engines.DialFunc.
func (f *forwarder) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	f.mu.Lock()
	pod, ok := f.pods[ap.Addr()]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: no attached member's pod has address %s", address, ap.Addr())
	}
	if f.cluster.Config == nil {
		return nil, fmt.Errorf("dial %s: no client configuration to forward through", address)
	}
	// A round tripper per dial: client-go's SPDY round tripper keeps the
	// one connection it upgraded (SpdyRoundTripper.conn), so it cannot
	// serve two forwards.
	rt, upgrader, err := spdy.RoundTripperFor(f.cluster.Config)
	if err != nil {
		return nil, err
	}
	u := f.cluster.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	errOut := &logWriter{log: f.log, pod: f.namespace + "/" + pod}
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
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", f.namespace, pod, ap.Port(), err)
	case <-ctx.Done():
		end()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", f.namespace, pod, ap.Port(), ctx.Err())
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		end()
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: no local port: %v", f.namespace, pod, ap.Port(), err)
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
