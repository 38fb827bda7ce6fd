package kindlab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// A pod's process is alive while some process on this machine is in its
// container's cgroup: the node containers' processes are the host's, and
// containerd names each container's cgroup after its ID. Asking the node's
// container runtime instead is a docker exec, 0.2-2 s on a busy machine,
// which made one engine's status take as long as the lab's status timeout
// (2 s) allows; reading /proc takes milliseconds.

// scanEvery: one scan of /proc serves the liveness questions of this long
// (a status probes every member's processes at once).
const scanEvery = 250 * time.Millisecond

// containerIDRE is a containerd container ID in a cgroup path.
var containerIDRE = regexp.MustCompile(`[0-9a-f]{64}`)

// liveContainers caches the container IDs that have processes.
type liveContainers struct {
	mu   sync.Mutex
	at   time.Time
	live map[string]bool
}

// has says whether a container has a process now (as of the last scan,
// at most scanEvery old).
func (l *liveContainers) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.at) >= scanEvery {
		l.live, l.at = scanContainers(), time.Now()
	}
	return l.live[id]
}

// stale makes the next question scan again: after chaosloop signalled,
// started or stopped a process, a scan from before says nothing.
func (l *liveContainers) stale() {
	l.mu.Lock()
	l.at = time.Time{}
	l.mu.Unlock()
}

func scanContainers() map[string]bool {
	live := map[string]bool{}
	files, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			for _, id := range containerIDRE.FindAll(line, -1) {
				live[string(id)] = true
			}
		}
	}
	return live
}

// idsDir holds the container ID of each pod's process, so that a later
// chaosloop (status, a heal) answers Alive the same fast way.
func (p *Pods) idsDir() string { return filepath.Join(p.StateDir, "pod-containers") }

// recordContainer notes the container ID of a pod's running process.
func (p *Pods) recordContainer(ctx context.Context, name string) {
	out, err := p.inNode(ctx, name, `echo "$id"`)
	id := strings.TrimSpace(string(out))
	if err != nil || !containerIDRE.MatchString(id) {
		return // Alive falls back to asking the node
	}
	p.mu.Lock()
	if p.ids == nil {
		p.ids = map[string]string{}
	}
	p.ids[name] = id
	p.mu.Unlock()
	if p.StateDir != "" && os.MkdirAll(p.idsDir(), 0o755) == nil {
		_ = os.WriteFile(filepath.Join(p.idsDir(), PodName(name)), []byte(id+"\n"), 0o644)
	}
}

// containerID is the recorded container ID of a pod's process, "" when
// none is.
func (p *Pods) containerID(name string) string {
	p.mu.Lock()
	id, ok := p.ids[name]
	p.mu.Unlock()
	if ok || p.StateDir == "" {
		return id
	}
	b, err := os.ReadFile(filepath.Join(p.idsDir(), PodName(name)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// forgetContainer drops a pod's recorded container (it is being replaced
// or removed).
func (p *Pods) forgetContainer(name string) {
	p.mu.Lock()
	delete(p.ids, name)
	p.mu.Unlock()
	if p.StateDir != "" {
		_ = os.Remove(filepath.Join(p.idsDir(), PodName(name)))
	}
}
