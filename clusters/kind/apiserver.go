package kind

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
	"github.com/chaosloop/chaosloop/lab"
)

// EngineAPI is the engine of the etcd service that is the cluster's own
// datastore: kubeadm's etcd and the API server on each control-plane
// node, judged by what the cluster's users see, the API.
const EngineAPI = "kubernetes-api"

// apiPort is the API servers' port on their nodes' lab addresses, and
// etcdClientPort their etcd's.
const apiPort, etcdClientPort = 6443, 2379

// Timeouts of the API engine's probes and waits.
const (
	// apiProbeTimeout bounds one member's /readyz: within the lab's
	// status timeout, above the API server's own check of its etcd
	// (kindlab.EtcdReadyCheckTimeout).
	apiProbeTimeout = 1500 * time.Millisecond
	apiStartTimeout = 5 * time.Minute
	// kubeadmElectionTimeout is etcd's default election timeout, which
	// kubeadm keeps.
	kubeadmElectionTimeout = time.Second
)

// apiEngine observes the API servers: a member is Up when its API server
// answers, Healthy when its /readyz (which includes its etcd's health:
// a linearizable read, so a quorum) says ok; the service is writable
// while some member is healthy. kubelet runs the members (static pods),
// so starting and stopping them is its business: StartMember waits for
// the member, Stop and StopMember do nothing.
type apiEngine struct {
	mu    sync.Mutex
	tls   *tls.Config // see etcdTLS
	tlsAt time.Time
}

var _ local.Engine = (*apiEngine)(nil)

func (*apiEngine) Install(context.Context) error { return nil }

func (*apiEngine) Version(context.Context) (string, error) {
	return "kubernetes " + k8sbin.KubernetesVersion + ", etcd " + k8sbin.EtcdVersion, nil
}

// PortGroups: kubeadm's etcd holds etcd's ports on the node.
func (*apiEngine) PortGroups() []string { return []string{"etcd", "kubernetes-api"} }

// FailoverBudget is kubeadm's etcd's leader election, as the etcd
// engine's.
func (*apiEngine) FailoverBudget() engines.Budget {
	return engines.WithMargin(2*kubeadmElectionTimeout, fmt.Sprintf("kubeadm's etcd: election timeout %s (etcd's default), randomised up to %s", kubeadmElectionTimeout, 2*kubeadmElectionTimeout))
}

func (e *apiEngine) Start(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, apiStartTimeout, time.Second, "Kubernetes API "+c.Service, func(ctx context.Context) error {
		st, err := e.Status(ctx, c)
		if err != nil {
			return err
		}
		for _, ms := range st.Members {
			if !ms.Healthy {
				return fmt.Errorf("%s: %s", ms.Name, ms.Detail)
			}
		}
		return nil
	})
}

// StartMember waits for the member's API server to be ready again (its
// node's kubelet starts it with the node).
func (e *apiEngine) StartMember(ctx context.Context, c *engines.Cluster, i int) error {
	return engines.WaitFor(ctx, apiStartTimeout, time.Second, "Kubernetes API "+c.Members[i].Name, func(ctx context.Context) error {
		ms := e.member(ctx, c, c.Members[i])
		if !ms.Healthy {
			return errors.New(ms.Detail)
		}
		return nil
	})
}

func (*apiEngine) StopMember(context.Context, *engines.Cluster, int) error { return nil }
func (*apiEngine) Stop(context.Context, *engines.Cluster) error            { return nil }

func (*apiEngine) Endpoints(c *engines.Cluster) []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = netip.AddrPortFrom(m.Addr, apiPort).String()
	}
	return out
}

// Status probes every member's /readyz in parallel.
func (e *apiEngine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	st := engines.Status{Engine: EngineAPI, Members: make([]engines.MemberStatus, len(c.Members))}
	st.Version, _ = e.Version(ctx)
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() { st.Members[i] = e.member(ctx, c, m) })
	}
	wg.Wait()
	for _, ms := range st.Members {
		st.Writable = st.Writable || ms.Healthy
	}
	return st, nil
}

// member asks one API server for /readyz on a fresh connection (a paused
// one must time out, not answer from a pooled connection).
func (e *apiEngine) member(ctx context.Context, c *engines.Cluster, m engines.Member) engines.MemberStatus {
	ms := engines.MemberStatus{Index: m.Index, Name: m.Name}
	ctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	defer cancel()
	dial := c.Dialer()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return dial(ctx, network, addr) },
		// A health probe on the lab's own network of the lab's own API
		// servers, which serve a certificate of the cluster's CA for
		// their node address: what is probed is whether they answer.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DisableKeepAlives: true,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+netip.AddrPortFrom(m.Addr, apiPort).String()+"/readyz", nil)
	if err != nil {
		ms.Detail = err.Error()
		return ms
	}
	resp, err := client.Do(req)
	if err != nil {
		ms.Detail = err.Error()
		ms.TimedOut = lab.IsTimeout(err) || errors.Is(ctx.Err(), context.DeadlineExceeded)
		return ms
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	ms.Up = true
	if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
		ms.Healthy, ms.Detail = true, "readyz ok"
		return ms
	}
	failed := failedChecks(string(body))
	ms.Detail = fmt.Sprintf("readyz %d: %s", resp.StatusCode, failed)
	if strings.Contains(failed, "etcd") {
		var why string
		ms.TimedOut, why = e.etcdVerdict(ctx, c, m)
		ms.Detail += "; " + why
	}
	return ms
}

// etcdVerdict tells an API server that is only slow from one whose etcd
// has lost its quorum. /readyz fails its etcd check when a linearizable
// read takes over kindlab.EtcdReadyCheckTimeout, which a cluster with a
// quorum exceeds on a busy machine (a rack's restart on two cores: all
// three API servers failed it at once, 22-34 s after the heal, with their
// etcd electing nothing). So the member's etcd is asked directly, in what
// is left of the probe's time: a leader means a quorum, and the failed
// check is no evidence either way (timed out, unknown); no leader, or an
// etcd that refuses, is evidence.
func (e *apiEngine) etcdVerdict(ctx context.Context, c *engines.Cluster, m engines.Member) (timedOut bool, why string) {
	tlsConf, err := e.etcdTLS(c.StateDir)
	if err != nil {
		return false, "etcd not asked: " + err.Error()
	}
	ep := netip.AddrPortFrom(m.Addr, etcdClientPort).String()
	cli, err := kindlab.EtcdClient(tlsConf, []string{ep}, c.Dialer())
	if err != nil {
		return false, "etcd not asked: " + err.Error()
	}
	defer cli.Close()
	st, err := cli.Status(ctx, ep)
	switch {
	case err != nil:
		return lab.IsTimeout(err) || ctx.Err() != nil, "etcd: " + err.Error()
	case st.Leader == 0:
		return false, "etcd has no leader"
	}
	return true, fmt.Sprintf("etcd has leader %x: the API server's check of it was slow", st.Leader)
}

// etcdTLS is the client certificate the API engine asks etcd with, made
// once an hour's validity is half spent.
func (e *apiEngine) etcdTLS(stateDir string) (*tls.Config, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tls == nil || time.Since(e.tlsAt) > 30*time.Minute {
		conf, err := kindlab.EtcdClientTLS(stateDir)
		if err != nil {
			return nil, err
		}
		e.tls, e.tlsAt = conf, time.Now()
	}
	return e.tls, nil
}

// failedChecks are the failed checks of a /readyz answer ("[-]etcd
// failed: ..."), or its start.
func failedChecks(body string) string {
	var failed []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			failed = append(failed, strings.TrimPrefix(l, "[-]"))
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return strings.TrimSpace(body)
}

// staticPods are the API service's members' processes: each control-plane
// node's etcd and kube-apiserver static pods, run by its kubelet. kill
// and pause signal them in their node as the other members' processes;
// the kubelet restarts a killed one by itself, as it would on a real
// control-plane node.
type staticPods struct {
	c *kindlab.Cluster
}

var _ engines.Launcher = (*staticPods)(nil)

// staticComponents are a control-plane member's static pods.
var staticComponents = []string{"etcd", "kube-apiserver"}

// Processes: a member's static pods, named COMPONENT-NODE as kubelet
// names them.
func (s *staticPods) Processes(_ context.Context, m engines.Member) ([]string, error) {
	var out []string
	for _, comp := range staticComponents {
		out = append(out, comp+"-"+m.Node)
	}
	return out, nil
}

func (s *staticPods) Start(_ context.Context, m engines.Member, spec proc.Spec) (string, error) {
	return "", fmt.Errorf("kind: %s runs as a static pod of %s", spec.Name, m.Node)
}

func (s *staticPods) script(name, body string) (string, string) {
	node := ""
	for _, n := range s.c.Plan.Nodes {
		for _, comp := range staticComponents {
			if name == comp+"-"+n.Name {
				node = n.Name
			}
		}
	}
	return node, fmt.Sprintf(`id=$(crictl ps --quiet --state running --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.pod.name=%s)
%s`, name, body)
}

func (s *staticPods) Alive(ctx context.Context, name string) bool {
	node, script := s.script(name, `echo "$id"`)
	out, err := s.c.Exec(ctx, node, script)
	return err == nil && strings.TrimSpace(string(out)) != ""
}

func (s *staticPods) Signal(ctx context.Context, name string, sig syscall.Signal) error {
	node, script := s.script(name, fmt.Sprintf(`[ -n "$id" ] || { echo not running; exit 0; }
kill -%d "$(crictl inspect --output go-template --template '{{.info.pid}}' "$id")"`, int(sig)))
	out, err := s.c.Exec(ctx, node, script)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "not running" {
		return os.ErrProcessDone
	}
	return nil
}

func (s *staticPods) Stop(context.Context, string, time.Duration) error { return nil }
