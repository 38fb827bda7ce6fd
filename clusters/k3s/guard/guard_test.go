package guard

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/apitest"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3stest"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
	"github.com/chaosloop/chaosloop/lab"
)

// cluster is a real API server whose nodes are testdata/faults.yaml's
// (dc1-cp the control plane) and one node the scenario does not name
// (other), every one Ready; the guard reaches it through a proxy the
// test can cut. There is no kubelet: the test sets the nodes' Ready.
type cluster struct {
	cs    kubernetes.Interface
	proxy *proxy
	c     *k3s.Cluster
}

func newCluster(t *testing.T) *cluster {
	s := apitest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	require.NoError(t, err)
	k3stest.Nodes(t, cs, append(k3stest.TwoSites(), k3stest.Node{Name: "other", IP: "198.18.30.1"})...)
	cl := &cluster{cs: cs, proxy: newProxy(t, s.URL)}
	rc := rest.CopyConfig(s.Config)
	rc.Host = "https://" + cl.proxy.addr
	rc.Timeout = 2 * time.Second
	cl.c, err = k3s.NewCluster(enginetest.Log(t), rc, s.Context)
	require.NoError(t, err)
	return cl
}

func (cl *cluster) setReady(t *testing.T, node string, st corev1.ConditionStatus) {
	k3stest.SetReady(t, cl.cs, node, st)
}

// watching is a Watch running in the background, its looks in a channel.
type watching struct {
	looks chan Look
	done  chan error
	// ended is closed once Watch has returned (done may have been read)
	ended chan struct{}
}

func (cl *cluster) watch(t *testing.T, faults []lab.Injected, budget time.Duration) *watching {
	g := &Guard{Cluster: cl.c, Topology: faultsTopology(t), Log: enginetest.Log(t),
		Faults: func() []lab.Injected { return faults }, Interval: 100 * time.Millisecond, APIBudget: budget}
	w := &watching{looks: make(chan Look, 1000), done: make(chan error, 1), ended: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	g.Looked = func(l Look) {
		select {
		case w.looks <- l:
		case <-ctx.Done():
		}
	}
	go func() {
		w.done <- g.Watch(ctx)
		close(w.ended)
	}()
	t.Cleanup(func() {
		cancel()
		<-w.ended
	})
	return w
}

// until waits (at most a minute) for a look that ok accepts, then for n
// more looks, failing if Watch stops meanwhile.
func (w *watching) until(t *testing.T, ok func(Look) bool, n int) {
	t.Helper()
	deadline := time.After(time.Minute)
	seen := false
	for n > 0 {
		select {
		case l := <-w.looks:
			if seen {
				n--
			} else {
				seen = ok(l)
			}
		case err := <-w.done:
			t.Fatalf("Watch stopped: %v", err)
		case <-deadline:
			t.Fatal("no such look within a minute")
		}
	}
}

func (w *watching) stop(t *testing.T) *Stop {
	t.Helper()
	select {
	case err := <-w.done:
		var s *Stop
		require.True(t, errors.As(err, &s), "%v", err)
		return s
	case <-time.After(time.Minute):
		t.Fatal("Watch did not stop within a minute")
		return nil
	}
}

func notReady(node string) func(Look) bool {
	return func(l Look) bool { _, ok := l.NotReady[node]; return ok }
}

// A node the fault cuts off the control plane may turn NotReady; one no
// fault concerns stops the experiment, named with why.
func TestANodeOutsideTheFaultStops(t *testing.T) {
	cl := newCluster(t)
	w := cl.watch(t, injected(lab.Fault{Action: "isolate", Target: "site/dc2"}), time.Minute)
	cl.setReady(t, "dc2-w", corev1.ConditionUnknown)
	w.until(t, notReady("dc2-w"), 3)
	cl.setReady(t, "other", corev1.ConditionUnknown)
	s := w.stop(t)
	require.Equal(t, []string{"other"}, s.Nodes)
	require.Contains(t, s.Reason, "node/other (Ready=Unknown, NodeStatusUnknown) NotReady, and no fault in place concerns it")
}

// A node NotReady before the faults is not theirs: judged again only once
// it has been Ready.
func TestANodeNotReadyBeforeIsExcused(t *testing.T) {
	cl := newCluster(t)
	cl.setReady(t, "dc1-w", corev1.ConditionFalse)
	w := cl.watch(t, injected(lab.Fault{Action: "isolate", Target: "site/dc2"}), time.Minute)
	w.until(t, notReady("dc1-w"), 3)
	cl.setReady(t, "dc1-w", corev1.ConditionTrue)
	w.until(t, func(l Look) bool { return len(l.NotReady) == 0 }, 1)
	cl.setReady(t, "dc1-w", corev1.ConditionFalse)
	require.Equal(t, []string{"dc1-w"}, w.stop(t).Nodes)
}

// A node deleted from the cluster is outside any plan.
func TestANodeDeletedStops(t *testing.T) {
	cl := newCluster(t)
	w := cl.watch(t, nil, time.Minute)
	w.until(t, func(Look) bool { return true }, 1)
	require.NoError(t, cl.cs.CoreV1().Nodes().Delete(t.Context(), "dc2-w", metav1.DeleteOptions{}))
	s := w.stop(t)
	require.Equal(t, []string{"dc2-w"}, s.Nodes)
	require.Contains(t, s.Reason, "deleted from the cluster")
}

// The API server cut off chaosloop for longer than the budget stops the
// experiment, when no fault takes the control plane's quorum; the time is
// measured from its last answer.
func TestTheAPIServerGoneStops(t *testing.T) {
	cl := newCluster(t)
	w := cl.watch(t, injected(lab.Fault{Action: "isolate", Target: "node/dc1-w"}), 2*time.Second)
	w.until(t, func(Look) bool { return true }, 1)
	cl.proxy.cut()
	s := w.stop(t)
	require.Greater(t, s.APIDown, 2*time.Second)
	require.Contains(t, s.Reason, "has not answered for")
	require.Empty(t, s.Nodes)
}

// A fault that takes the control plane's quorum may take the API server:
// the guard waits, past the budget, and sees it come back.
func TestTheAPIServerMayGoWithItsQuorum(t *testing.T) {
	cl := newCluster(t)
	w := cl.watch(t, injected(lab.Fault{Action: "power-off", Target: "rack/dc1/r1"}), time.Second)
	w.until(t, func(Look) bool { return true }, 1)
	cl.proxy.cut()
	w.until(t, func(l Look) bool { return l.APIDown > 2*time.Second }, 3)
	cl.proxy.restore(t)
	w.until(t, func(l Look) bool { return l.APIDown == 0 }, 1)
}

// proxy forwards loopback connections to the API server until cut: the
// API server unreachable, as a network cut makes it, with the server
// itself still running.
type proxy struct {
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	closed bool
}

func newProxy(t *testing.T, url string) *proxy {
	p := &proxy{target: url[len("https://"):]}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln, p.closed = ln, false
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection through it.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.serve(ln)
}
