package kindlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

// Namespace holds the members' pods.
const Namespace = "chaosloop"

// Label keys of a member's pod.
const (
	LabelProcess = "chaosloop.io/process"
	LabelMember  = "chaosloop.io/member"
	LabelService = "chaosloop.io/service"
)

// MainContainer is the name of a member pod's only container (an
// exported Chaos Mesh container-kill names it).
const MainContainer = "main"

// podStartTimeout bounds the wait from creating a pod to its process
// running (an image already in the node: seconds).
const podStartTimeout = 2 * time.Minute

// Pods is the kind backend's engines.Launcher: each process of a member
// is a pod of its own, pinned to the member's node, in the node's network
// namespace (hostNetwork: the node container's namespace is the lab host's,
// so the member keeps its lab address and the engine's configuration and
// probes work unchanged), from the engine's image, with the member's
// directories as hostPath volumes at the same paths (see MemberDirs). A
// process that ends stays ended (restartPolicy Never), as on the local
// lab: the engine decides when to start it again.
type Pods struct {
	Cluster *Cluster
	Image   string // the engine's image (images.EngineImage)
	Service string
	// StateDir, when set, keeps the container IDs of the pods' processes
	// for a later chaosloop (see Alive).
	StateDir string

	mu    sync.Mutex
	nodes map[string]string // process name → node, learned by Start
	ids   map[string]string // process name → container ID, learned by Start
}

// PodName is the pod of a named process: a DNS subdomain (lower case,
// [a-z0-9.-]).
func PodName(process string) string {
	return strings.Trim(podNameRE.ReplaceAllString(strings.ToLower(process), "-"), "-.")
}

var podNameRE = regexp.MustCompile(`[^a-z0-9.-]+`)

// Start creates the process's pod on m's node (replacing an ended one)
// and returns once its process runs.
func (p *Pods) Start(ctx context.Context, m engines.Member, spec proc.Spec) (string, error) {
	n, ok := p.Cluster.Plan.Node(m.Node)
	if !ok {
		return "", fmt.Errorf("kind: member %s is on %s, not a node of the cluster", m.Name, m.Node)
	}
	pod, err := p.manifest(m, spec)
	if err != nil {
		return "", err
	}
	name := PodName(spec.Name)
	p.forgetContainer(spec.Name)
	if out, err := p.Cluster.Kubectl(ctx, nil, "delete", "pod", name, "--namespace", Namespace,
		"--ignore-not-found", "--force", "--grace-period=0", "--wait=true"); err != nil {
		return "", fmt.Errorf("kind: remove the ended pod %s: %w: %s", name, err, out)
	}
	if out, err := p.Cluster.Kubectl(ctx, pod, "create", "--filename", "-"); err != nil {
		return "", fmt.Errorf("kind: create pod %s: %w: %s", name, err, out)
	}
	p.mu.Lock()
	if p.nodes == nil {
		p.nodes = map[string]string{}
	}
	p.nodes[spec.Name] = n.Name
	p.mu.Unlock()
	if err := p.waitRunning(ctx, name, spec.Log); err != nil {
		return "", err
	}
	p.recordContainer(ctx, spec.Name)
	p.Cluster.live.stale()
	return "pod " + Namespace + "/" + name + " on " + n.Name, nil
}

// manifest is the pod of spec's process for member m, as JSON.
func (p *Pods) manifest(m engines.Member, spec proc.Spec) ([]byte, error) {
	command, err := engines.PodCommand(spec, hostUsers(spec.Name))
	if err != nil {
		return nil, err
	}
	var env []map[string]string
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, map[string]string{"name": k, "value": v})
	}
	var volumes, mounts []map[string]any
	for i, dir := range engines.MemberDirs(m, spec) {
		vol := "dir" + strconv.Itoa(i)
		volumes = append(volumes, map[string]any{"name": vol, "hostPath": map[string]string{"path": dir, "type": "DirectoryOrCreate"}})
		mounts = append(mounts, map[string]any{"name": vol, "mountPath": dir})
	}
	container := map[string]any{
		"name": MainContainer, "image": p.Image, "imagePullPolicy": "Never",
		"command": command, "env": env, "volumeMounts": mounts,
	}
	if spec.Dir != "" {
		container["workingDir"] = spec.Dir
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": PodName(spec.Name), "namespace": Namespace,
			"labels": map[string]string{LabelProcess: PodName(spec.Name), LabelMember: PodName(m.Name), LabelService: PodName(p.Service)},
		},
		"spec": map[string]any{
			"nodeName": m.Node, "hostNetwork": true, "dnsPolicy": "Default",
			"restartPolicy": "Never",
			// the control-plane taint, and a node that is down or cut
			// off: a member stays on its node whatever happens to it
			"tolerations": []map[string]string{{"operator": "Exists"}},
			"containers":  []any{container},
			"volumes":     volumes,
		},
	}
	return json.Marshal(pod)
}

// hostUsers gives a user's IDs on this machine: the member's files were
// made here, and the node containers share them.
func hostUsers(spec string) engines.Users {
	return func(name string) (string, string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", "", fmt.Errorf("kind: %s runs as %s: %w", spec, name, err)
		}
		return u.Uid, u.Gid, nil
	}
}

// waitRunning returns once the pod's container runs, or with why it ended.
func (p *Pods) waitRunning(ctx context.Context, name, logFile string) error {
	deadline := time.Now().Add(podStartTimeout)
	for {
		state, err := p.podState(ctx, name)
		switch {
		case err == nil && state == "running":
			return nil
		case err == nil && strings.HasPrefix(state, "terminated"):
			return fmt.Errorf("kind: pod %s ended (%s): %s", name, state, logTail(logFile))
		case time.Now().After(deadline):
			return fmt.Errorf("kind: pod %s not running after %s: %s %v", name, podStartTimeout, state, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podState is the state of the pod's container as the API has it:
// "running", "terminated: <reason> <exit code>", "waiting: <reason>", or
// the pod's phase before it has a container.
func (p *Pods) podState(ctx context.Context, name string) (string, error) {
	out, err := p.Cluster.Kubectl(ctx, nil, "get", "pod", name, "--namespace", Namespace, "--output", "json")
	if err != nil {
		return "", err
	}
	var pod struct {
		Status struct {
			Phase             string
			ContainerStatuses []struct {
				State map[string]struct {
					Reason   string
					ExitCode int
				}
			}
		}
	}
	if err := json.Unmarshal(out, &pod); err != nil {
		return "", err
	}
	for _, cs := range pod.Status.ContainerStatuses {
		for k, st := range cs.State {
			switch k {
			case "running":
				return k, nil
			case "terminated":
				return fmt.Sprintf("terminated: %s, exit code %d", st.Reason, st.ExitCode), nil
			default:
				return k + ": " + st.Reason, nil
			}
		}
	}
	return "phase " + pod.Status.Phase, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	return install.Tail(b)
}

// node is the node of a named process: the one Start put it on, or the
// pod's (a later chaosloop's Pods).
func (p *Pods) node(ctx context.Context, name string) (NodePlan, error) {
	p.mu.Lock()
	node, ok := p.nodes[name]
	p.mu.Unlock()
	if !ok {
		out, err := p.Cluster.Kubectl(ctx, nil, "get", "pod", PodName(name), "--namespace", Namespace,
			"--output", "jsonpath={.spec.nodeName}")
		if err != nil {
			return NodePlan{}, err
		}
		node = strings.TrimSpace(string(out))
	}
	n, ok := p.Cluster.Plan.Node(node)
	if !ok {
		return NodePlan{}, fmt.Errorf("kind: process %s has no node", name)
	}
	return n, nil
}

// inNode runs a shell script in the node container of a named process,
// with the pod's running container's ID in $id ("" when none runs).
func (p *Pods) inNode(ctx context.Context, name, script string) ([]byte, error) {
	n, err := p.node(ctx, name)
	if err != nil {
		return nil, err
	}
	find := fmt.Sprintf(`id=$(crictl ps --quiet --state running --label io.kubernetes.pod.namespace=%s --label io.kubernetes.pod.name=%s)
`, Namespace, PodName(name))
	return docker.Run(ctx, "exec", n.Container, "sh", "-c", find+script)
}

// Alive says whether the process runs: by its container's cgroup on this
// machine when its container is known (alive.go), else by asking the
// node's container runtime. Never the API: a pod on a node that is down
// or cut off stays Running there.
func (p *Pods) Alive(ctx context.Context, name string) bool {
	if id := p.containerID(name); id != "" {
		return p.Cluster.live.has(id)
	}
	out, err := p.inNode(ctx, name, `echo "$id"`)
	return err == nil && strings.TrimSpace(string(out)) != ""
}

// Signal signals the process in its node (its PID there, from the
// container runtime), as the local lab signals a member's process.
func (p *Pods) Signal(ctx context.Context, name string, sig syscall.Signal) error {
	defer p.Cluster.live.stale()
	out, err := p.inNode(ctx, name, fmt.Sprintf(`[ -n "$id" ] || { echo not running; exit 0; }
kill -%d "$(crictl inspect --output go-template --template '{{.info.pid}}' "$id")"`, int(sig)))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "not running" {
		return os.ErrProcessDone
	}
	return nil
}

// Stop deletes the process's pod (SIGTERM, SIGKILL after grace) and
// waits until it is gone; on a node that does not answer, the pod goes
// from the API without waiting for its node.
func (p *Pods) Stop(ctx context.Context, name string, grace time.Duration) error {
	defer p.Cluster.live.stale()
	pod := PodName(name)
	p.forgetContainer(name)
	secs := int(grace.Seconds())
	timeout := grace + 30*time.Second
	_, err := p.Cluster.Kubectl(ctx, nil, "delete", "pod", pod, "--namespace", Namespace, "--ignore-not-found",
		"--grace-period="+strconv.Itoa(secs), "--wait=true", "--timeout="+timeout.String())
	if err == nil {
		return nil
	}
	if out, ferr := p.Cluster.Kubectl(ctx, nil, "delete", "pod", pod, "--namespace", Namespace, "--ignore-not-found",
		"--force", "--grace-period=0"); ferr != nil {
		return errors.Join(err, fmt.Errorf("kind: force delete pod %s: %w: %s", pod, ferr, out))
	}
	return nil
}

// Processes names the processes of a member that have a pod (running or
// ended).
func (p *Pods) Processes(ctx context.Context, m engines.Member) ([]string, error) {
	out, err := p.Cluster.Kubectl(ctx, nil, "get", "pods", "--namespace", Namespace,
		"--selector", LabelMember+"="+PodName(m.Name), "--output", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// Prepare makes the cluster ready for members' pods: the namespace, the
// service's headless Service, and the engine image in every node's container runtime (none is pulled:
// the image comes from the Docker daemon the cluster runs in).
func (p *Pods) Prepare(ctx context.Context) error {
	if out, err := p.Cluster.Kubectl(ctx, ServiceObjects([]string{p.Service}), "apply", "--filename", "-"); err != nil {
		return fmt.Errorf("kind: namespace %s and service %s: %w: %s", Namespace, p.Service, err, out)
	}
	return p.Cluster.LoadImage(ctx, p.Image)
}

var _ engines.Launcher = (*Pods)(nil)
