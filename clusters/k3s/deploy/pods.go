// Package deploy runs chaosloop's own engines on a real cluster (deploy
// mode, the services a scenario does not attach): each member's process
// is a pod of chaosloop's, pinned to the member's node, in the node's
// network, from the engine's image in the registry the user names. The
// engines' code is the local lab's (package engines): Pods is its
// Launcher and NodeFiles its Files on the cluster's nodes.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Label keys of a member's pod, besides the owned labels.
const (
	LabelProcess = "chaosloop.io/process"
	LabelMember  = "chaosloop.io/member"
	LabelService = "chaosloop.io/service"
	// LabelOnce marks the pod of a member's one-shot command (Run).
	LabelOnce = "chaosloop.io/once"
	// ComponentLabel's value on members' pods (the agent's is "agent").
	ComponentMember = "member"
	// AnnotationPortOffset records the member's port offset on its pod,
	// for status to probe it at the ports the run chose.
	AnnotationPortOffset = "chaosloop.io/port-offset"
)

// componentLabel is the owned objects' component label.
const componentLabel = "app.kubernetes.io/component"

// MainContainer is a member pod's only container.
const MainContainer = "main"

// DefaultPortOffset keeps chaosloop's members away from the ports of the
// engines a cluster's nodes already run: K3S's embedded etcd (2379-2380),
// the adopter's MySQL, Kafka, Redis. Every port an engine uses, plus 2000,
// stays below Kubernetes' NodePort range (30000-32767) and Linux's
// ephemeral ports (32768-60999): etcd 4379, ZooKeeper 4181 (its
// election's 5888), Kafka 11092, MySQL 5306, Redis 8379 and its Sentinel
// 28379, PostgreSQL 7432, Patroni 10008 and FerretDB 29017.
const DefaultPortOffset = 2000

// MaxPortOffset keeps the highest port an engine uses (FerretDB's 27017)
// a port.
const MaxPortOffset = 65535 - 27017

// DataRoot is where members keep their files on their nodes, each
// scenario under a directory of its own.
const DataRoot = k3s.DataRoot

// startTimeout bounds the wait from creating a pod to its process
// running: the node may pull the engine's image from the registry first.
const startTimeout = 5 * time.Minute

// Pods is the k3s backend's engines.Launcher: each process of a member is
// a pod in k3s.Namespace with the scenario's owned labels (so down finds
// it), pinned to the member's cluster node (whatever its taints or state:
// a member stays on its node), in the node's network namespace (the
// member's address is its node's, its ports offset: Member.PortOffset),
// from Image, with the member's directories as hostPath volumes at the
// same paths under Root(Scenario). A process that ends stays ended
// (restartPolicy Never): the engine decides when to start it again, as
// in the labs.
type Pods struct {
	Cluster  *k3s.Cluster
	Scenario string
	Service  string
	// Image is the engine's image in the user's registry.
	Image string
	// NodeMap maps the members' scenario nodes to cluster nodes.
	NodeMap k3s.NodeMap
	Log     *slog.Logger
	// Margin is how long past its grace period a pod being deleted is
	// waited for before it is deleted forcibly (30 s when 0).
	Margin time.Duration

	// seen is the last list of the service's pods Alive answered from.
	seen struct {
		sync.Mutex
		at     time.Time
		states map[string]string // pod name → State
	}
}

// aliveFor is how long one list of the service's pods answers Alive. An
// engine's status asks it of every process of every member, every
// sample: a GET each (39 pods on the quickstart) kept the API server of a
// busy 12-node kind cluster throttled at chaosloop's 50 requests/s.
const aliveFor = time.Second

var (
	_ engines.Liveness = (*Pods)(nil)
	_ engines.Runner   = (*Pods)(nil)
)

// PodName is the pod of a named process: a DNS-1123 subdomain.
func PodName(process string) string {
	return strings.Trim(podNameRE.ReplaceAllString(strings.ToLower(process), "-"), "-.")
}

var podNameRE = regexp.MustCompile(`[^a-z0-9.-]+`)

// byName runs a process as its user by name: the user the engine's image
// has, which a node's own users need not match.
func byName(name string) (string, string, error) { return name, name, nil }

// Pod is the pod of spec's process for member m.
func (p *Pods) Pod(m engines.Member, spec proc.Spec) (*corev1.Pod, error) {
	owned, err := k3s.OwnedLabels(p.Scenario)
	if err != nil {
		return nil, err
	}
	if p.Image == "" {
		return nil, fmt.Errorf("k3s: no image to start %s from (--registry)", spec.Name)
	}
	command, err := engines.PodCommand(spec, byName)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		componentLabel: ComponentMember,
		LabelProcess:   PodName(spec.Name),
		LabelMember:    PodName(m.Name),
		LabelService:   PodName(p.Service),
	}
	maps.Copy(labels, owned)
	c := corev1.Container{
		Name: MainContainer, Image: p.Image, ImagePullPolicy: corev1.PullIfNotPresent,
		Command: command, WorkingDir: spec.Dir,
	}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	var volumes []corev1.Volume
	dirType := corev1.HostPathDirectoryOrCreate
	for i, dir := range engines.MemberDirs(m, spec) {
		if root := Root(p.Scenario); !strings.HasPrefix(dir, root+"/") {
			return nil, fmt.Errorf("k3s: %s's directory %s is not under %s, the scenario's directory on its nodes", m.Name, dir, root)
		}
		name := "dir" + strconv.Itoa(i)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: dir})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: PodName(spec.Name), Namespace: k3s.Namespace, Labels: labels,
			Annotations: map[string]string{AnnotationPortOffset: strconv.Itoa(m.PortOffset)}},
		Spec: corev1.PodSpec{
			NodeName:      p.NodeMap.ClusterNode(m.Node),
			HostNetwork:   true,
			DNSPolicy:     corev1.DNSDefault,
			RestartPolicy: corev1.RestartPolicyNever,
			// control-plane taints, and a node down or cut off: a member
			// stays on its node whatever happens to it
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			TerminationGracePeriodSeconds: ptr(int64(10)),
			Containers:                    []corev1.Container{c},
			Volumes:                       volumes,
		},
	}, nil
}

func ptr[T any](v T) *T { return &v }

func (p *Pods) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// Start creates the process's pod on m's node, replacing an ended one,
// and returns once its process runs.
func (p *Pods) Start(ctx context.Context, m engines.Member, spec proc.Spec) (string, error) {
	pod, err := p.Pod(m, spec)
	if err != nil {
		return "", err
	}
	if err := p.create(ctx, pod); err != nil {
		return "", err
	}
	if err := p.waitRunning(ctx, pod.Name); err != nil {
		return "", err
	}
	return "pod " + k3s.Namespace + "/" + pod.Name + " on " + pod.Spec.NodeName, nil
}

// errEnded is a pod whose process ended while it was waited for.
var errEnded = errors.New("its process ended")

// create creates pod, replacing an ended one of the same name.
func (p *Pods) create(ctx context.Context, pod *corev1.Pod) error {
	defer p.forget()
	if err := p.remove(ctx, pod.Name, 0); err != nil {
		return fmt.Errorf("k3s: remove the ended pod %s: %w", pod.Name, err)
	}
	if _, err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("k3s: create pod %s/%s: %w", k3s.Namespace, pod.Name, err)
	}
	return nil
}

// Run runs spec's short-lived command (a storage format) in a pod of its
// own on m's node, made as a process's (the engine's image, the node's
// network, the member's directories), and returns its output once it
// ended; the pod is deleted then. The pod is labelled LabelOnce, so it
// is never taken for the member's process.
func (p *Pods) Run(ctx context.Context, m engines.Member, spec proc.Spec) ([]byte, error) {
	pod, err := p.Pod(m, spec)
	if err != nil {
		return nil, err
	}
	pod.Labels[LabelOnce] = "true"
	if err := p.create(ctx, pod); err != nil {
		return nil, err
	}
	pods := p.Cluster.Client.CoreV1().Pods(k3s.Namespace)
	defer func() {
		// ctx may be done: the pod goes all the same
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := p.remove(dctx, pod.Name, 0); err != nil {
			p.log().Warn("k3s: a one-shot command's pod stays", "pod", pod.Name, "err", err)
		}
	}()
	var state string
	var code int32 = -1
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			state = err.Error()
			return false, nil
		}
		state = State(got)
		for _, cs := range got.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				code = t.ExitCode
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("k3s: pod %s/%s (%s) did not end: %s: %w", k3s.Namespace, pod.Name, spec.Path, state, err)
	}
	out, lerr := pods.GetLogs(pod.Name, &corev1.PodLogOptions{Container: MainContainer}).DoRaw(ctx)
	if code != 0 {
		return out, fmt.Errorf("k3s: pod %s/%s (%s): %s", k3s.Namespace, pod.Name, spec.Path, state)
	}
	if lerr != nil {
		return nil, fmt.Errorf("k3s: pod %s/%s's output: %w", k3s.Namespace, pod.Name, lerr)
	}
	return out, nil
}

// waitRunning returns once the pod's container runs, or with why it ended.
func (p *Pods) waitRunning(ctx context.Context, name string) error {
	var state string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, startTimeout, true, func(ctx context.Context) (bool, error) {
		pod, err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			state = err.Error()
			return false, nil // the API server may be slow: the timeout decides
		}
		state = State(pod)
		switch {
		case state == "running":
			return true, nil
		case strings.HasPrefix(state, "terminated"):
			return false, fmt.Errorf("k3s: pod %s/%s: %w (%s)", k3s.Namespace, name, errEnded, state)
		}
		return false, nil
	})
	if err != nil && !errors.Is(err, errEnded) {
		return fmt.Errorf("k3s: pod %s/%s not running after %s: %s: %w", k3s.Namespace, name, startTimeout, state, err)
	}
	return err
}

// State is the state of a member pod's container as the API has it:
// "running", "terminated: REASON, exit code N", "waiting: REASON", or the
// pod's phase before it has a container; "deleted" once it is being
// deleted.
func State(pod *corev1.Pod) string {
	if pod.DeletionTimestamp != nil {
		return "deleted"
	}
	for _, cs := range pod.Status.ContainerStatuses {
		switch st := cs.State; {
		case st.Running != nil:
			return "running"
		case st.Terminated != nil:
			return fmt.Sprintf("terminated: %s, exit code %d", st.Terminated.Reason, st.Terminated.ExitCode)
		case st.Waiting != nil:
			return "waiting: " + st.Waiting.Reason
		}
	}
	return "phase " + string(pod.Status.Phase)
}

// Alive says whether the process's pod runs, as the API server has it:
// on a real cluster chaosloop has no other way to look at a node. A node
// cut off or powered off keeps its pods Running in the API until the
// node controller marks them; the engines' probes, which reach the
// member itself, are what the runs judge.
//
// A list of the service's pods a second answers that a pod runs; that one
// does not is asked of the pod itself. A list taken while the pod was
// starting (by a probe's status, beside the start) would otherwise say
// it is not running to the start's own wait, after the start saw it run:
// "mariadbd of central-ledger-db-0 is not running", of a mariadbd that
// was, after the quickstart's rack came back on k3s.
func (p *Pods) Alive(ctx context.Context, name string) bool {
	alive, _ := p.Live(ctx, name)
	return alive
}

// Live is Alive with the error of an API server that did not answer
// (engines.Liveness): then whether the pod runs is unknown.
func (p *Pods) Live(ctx context.Context, name string) (bool, error) {
	if states, err := p.states(ctx); err == nil && states[PodName(name)] == "running" {
		return true, nil
	}
	pod, err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).Get(ctx, PodName(name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("k3s: is pod %s running: %w", PodName(name), err)
	}
	return State(pod) == "running", nil
}

// states are the service's pods' States, listed at most aliveFor ago
// (and not before this Pods last started, signalled or removed one).
func (p *Pods) states(ctx context.Context) (map[string]string, error) {
	p.seen.Lock()
	defer p.seen.Unlock()
	if p.seen.states != nil && time.Since(p.seen.at) < aliveFor {
		return p.seen.states, nil
	}
	sel, err := selector(p.Scenario, LabelService+"="+PodName(p.Service))
	if err != nil {
		return nil, err
	}
	at := time.Now()
	list, err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	states := make(map[string]string, len(list.Items))
	for i := range list.Items {
		states[list.Items[i].Name] = State(&list.Items[i])
	}
	p.seen.at, p.seen.states = at, states
	return states, nil
}

// forget drops the list Alive answers from: this Pods changed a pod.
func (p *Pods) forget() {
	p.seen.Lock()
	defer p.seen.Unlock()
	p.seen.states = nil
}

// ErrSignal is returned for a signal a pod cannot be sent from outside:
// chaosloop pauses a member on a cluster by freezing its pod through the
// node's agent, not with SIGSTOP.
var ErrSignal = errors.New("k3s: a member's pod can be sent SIGKILL or SIGTERM (its deletion) only")

// Signal ends the process's pod: SIGKILL deletes it at once, SIGTERM with
// its grace period. It does not wait; Stop does.
func (p *Pods) Signal(ctx context.Context, name string, sig syscall.Signal) error {
	var grace int64
	switch sig {
	case syscall.SIGKILL:
	case syscall.SIGTERM:
		grace = 10
	default:
		return fmt.Errorf("%w: not %s", ErrSignal, sig)
	}
	defer p.forget()
	err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).Delete(ctx, PodName(name), metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if apierrors.IsNotFound(err) {
		return os.ErrProcessDone
	}
	return err
}

// Stop deletes the process's pod (SIGTERM, SIGKILL after grace) and
// returns once it is gone from the API. A pod whose node does not answer
// within grace and a margin is deleted without waiting for the node.
func (p *Pods) Stop(ctx context.Context, name string, grace time.Duration) error {
	return p.remove(ctx, PodName(name), grace)
}

// remove deletes the named pod with grace and waits until it is gone; a
// pod left after grace and a margin (its node does not answer) is deleted
// forcibly, as `kubectl delete --force` does.
func (p *Pods) remove(ctx context.Context, name string, grace time.Duration) error {
	defer p.forget()
	pods := p.Cluster.Client.CoreV1().Pods(k3s.Namespace)
	secs := int64(grace.Seconds())
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &secs})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	gone := func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}
	margin := p.Margin
	if margin == 0 {
		margin = 30 * time.Second
	}
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, grace+margin, true, gone); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return err
	}
	p.log().Warn("k3s: a member's pod outlived its grace period: its node does not answer; deleting it forcibly", "pod", name)
	var zero int64
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("k3s: force delete pod %s/%s: %w", k3s.Namespace, name, err)
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, gone)
}

// Output is the named process's output as its pod's log has it, its
// first limit bytes.
func (p *Pods) Output(ctx context.Context, name string, limit int64) ([]byte, error) {
	return p.Cluster.Client.CoreV1().Pods(k3s.Namespace).GetLogs(PodName(name),
		&corev1.PodLogOptions{Container: MainContainer, LimitBytes: &limit}).DoRaw(ctx)
}

// Processes names the processes of a member that have a pod (running or
// ended), for the engines that look for leftovers.
func (p *Pods) Processes(ctx context.Context, m engines.Member) ([]string, error) {
	sel, err := selector(p.Scenario, LabelMember+"="+PodName(m.Name))
	if err != nil {
		return nil, err
	}
	list, err := p.Cluster.Client.CoreV1().Pods(k3s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pod := range list.Items {
		out = append(out, pod.Name)
	}
	return out, nil
}
