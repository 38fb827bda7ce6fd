// Package apitest runs a real Kubernetes API server on loopback for
// tests: etcd and kube-apiserver, the binaries package k8sbin builds
// (Kubernetes v1.34.4, etcd 3.6.5), with no kubelet, controller manager
// or scheduler. What a test gets is what the API server itself does:
// schema validation of custom resources, strict field validation,
// admission, RBAC, CRDs becoming Established.
//
// Both processes are killed by PID at cleanup; their logs, certificates
// and kubeconfig are kept with the test's evidence
// (/var/tmp/chaosloop-test-runs/<test>-…/apiserver) when it fails. Where
// the binaries are not built the test is skipped, or fails under
// CHAOSLOOP_REQUIRE_LAB=1 (CI builds them first: `chaosloop images
// build`).
package apitest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// ServiceRange is the API server's Service IP range: inside 198.18.0.0/15
// (benchmarking space), as every address chaosloop makes up.
const ServiceRange = "198.19.240.0/24"

// ContextName is the kubeconfig context of the server.
const ContextName = "apitest"

// StartTimeout bounds etcd's and the API server's start together. On an
// idle 2-core machine the API server is ready in a few seconds; a machine
// busy with a kind lab beside the test takes several times that.
const StartTimeout = 3 * time.Minute

// BinCache is where k8sbin's binaries are looked for: chaosloop's cache
// (CHAOSLOOP_KIND_BIN_CACHE overrides it, as for k8sbin's own test).
func BinCache() string {
	if dir := os.Getenv("CHAOSLOOP_KIND_BIN_CACHE"); dir != "" {
		return dir
	}
	return "/var/cache/chaosloop/kind/bin"
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// Kubeconfig is a kubeconfig file whose context ContextName is the
	// server's cluster-admin (a client certificate in system:masters).
	Kubeconfig string
	// Context is ContextName.
	Context string
	// Config is the kubeconfig's context as a client config.
	Config *rest.Config
	// URL is the API server's https://127.0.0.1:PORT.
	URL string
	// Dir holds the certificates, the kubeconfig and both processes' logs
	// (etcd.log, kube-apiserver.log).
	Dir string
	// Took is how long the start took: from etcd's start to the API
	// server's /readyz answering ok.
	Took time.Duration
}

// Start runs etcd and kube-apiserver on free loopback ports and waits for
// /readyz. Call it from the test (or a subtest) that owns the server: its
// cleanup stops both. With -short it skips the test.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts etcd and kube-apiserver")
	}
	bins := binaries(tb)
	ev := enginetest.NewEvidence(tb)
	dir := ev.WorkDir("apiserver")
	// etcd's data (its WAL preallocates 64 MB) is not evidence: a
	// directory of its own, removed after etcd is killed.
	data, err := os.MkdirTemp("", "cl-etcd-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(data) })

	pki, err := newPKI(dir)
	if err != nil {
		tb.Fatalf("certificates: %v", err)
	}
	start := time.Now()
	deadline := start.Add(StartTimeout)

	clientPort, peerPort := freePort(tb), freePort(tb)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startProcess(tb, dir, bins["etcd"],
		"--name=apitest",
		"--data-dir="+data,
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=apitest="+peerURL,
		// a throwaway store: no fsync, no waiting on a disk a lab shares
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	etcd.waitUntil(tb, deadline, func() bool {
		return httpOK(http.DefaultClient, etcdURL+"/health")
	})
	etcdTook := time.Since(start)

	apiPort := freePort(tb)
	url := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	api := startProcess(tb, dir, bins["kube-apiserver"],
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--service-cluster-ip-range="+ServiceRange,
		"--cert-dir="+dir,
		"--tls-cert-file="+pki.serverCert, "--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pki.saKey,
		"--service-account-signing-key-file="+pki.saKey,
		"--authorization-mode=RBAC",
		"--profiling=false",
	)

	file := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(file, url, pki); err != nil {
		tb.Fatal(err)
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: file},
		&clientcmd.ConfigOverrides{CurrentContext: ContextName}).ClientConfig()
	if err != nil {
		tb.Fatalf("kubeconfig %s: %v", file, err)
	}
	// a test creates objects in bursts: no client-side throttling
	cfg.QPS, cfg.Burst = 100, 200
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	hc.Timeout = 5 * time.Second
	api.waitUntil(tb, deadline, func() bool { return httpOK(hc, url+"/readyz") })
	hc.CloseIdleConnections()

	s := &Server{Kubeconfig: file, Context: ContextName, Config: cfg, URL: url, Dir: dir, Took: time.Since(start)}
	tb.Logf("kube-apiserver %s ready at %s in %s (etcd %s ready in %s); kubeconfig %s",
		k8sbin.KubernetesVersion, url, s.Took.Round(time.Millisecond),
		k8sbin.EtcdVersion, etcdTook.Round(time.Millisecond), file)
	return s
}

// binaries are etcd's and kube-apiserver's paths in the cache, where
// k8sbin builds them. A test does not build them (a cold build takes 8-25
// minutes; CI builds them before the tests): missing, they skip it, or
// fail it under CHAOSLOOP_REQUIRE_LAB=1.
func binaries(tb testing.TB) map[string]string {
	tb.Helper()
	b := &k8sbin.Builder{Dir: BinCache(), Log: enginetest.Log(tb)}
	set, err := b.Planned(context.Background())
	if err != nil {
		enginetest.RequireLab(tb, err.Error())
	}
	out := map[string]string{}
	var missing []string
	for _, name := range []string{"etcd", "kube-apiserver"} {
		p := set[name].Path
		out[name] = p
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "complete")); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		enginetest.RequireLab(tb, fmt.Sprintf("not built: %s (`chaosloop images build` builds them, as CI does first)",
			strings.Join(missing, ", ")))
	}
	return out
}

func httpOK(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// process is a server this package started.
type process struct {
	name, log string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startProcess runs bin in dir, its output in dir/NAME.log, and kills it
// by PID at cleanup (registered after the evidence directory's, so the
// log is kept after the process is gone). The kernel kills it too should
// the test binary die first.
func startProcess(tb testing.TB, dir, bin string, args ...string) *process {
	tb.Helper()
	name := filepath.Base(bin)
	log := filepath.Join(dir, name+".log")
	logf, err := os.Create(log)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("starting %s: %v", bin, err)
	}
	p := &process{name: name, log: log, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			tb.Errorf("%s (pid %d) still running 10 s after SIGKILL", name, cmd.Process.Pid)
		}
		logf.Close()
	})
	return p
}

// waitUntil polls ready until it holds, failing the test (with the log's
// tail) if the process exits or the deadline passes.
func (p *process) waitUntil(tb testing.TB, deadline time.Time, ready func() bool) {
	tb.Helper()
	for !ready() {
		select {
		case <-p.exited:
			tb.Fatalf("%s exited while starting (%v):\n%s", p.name, p.cmd.ProcessState, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready within %s:\n%s", p.name, StartTimeout, p.logTail())
		}
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// freePort is a loopback port nothing listens on now. The server binds it
// a moment later; a clash fails its start, which the test reports.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeKubeconfig writes the admin's kubeconfig for the server at url.
func writeKubeconfig(file, url string, pki *pki) error {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			panic(err) // written just before
		}
		return b
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ContextName] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: read(pki.caCert)}
	cfg.AuthInfos[ContextName] = &clientcmdapi.AuthInfo{
		ClientCertificateData: read(pki.clientCert), ClientKeyData: read(pki.clientKey),
	}
	cfg.Contexts[ContextName] = &clientcmdapi.Context{Cluster: ContextName, AuthInfo: ContextName}
	cfg.CurrentContext = ContextName
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		return errors.Join(errors.New("writing the kubeconfig"), err)
	}
	return nil
}
