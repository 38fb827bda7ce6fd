package k3s

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/topology"
)

// AttachedService is a service of the adopter's own (the scenario's
// services[].attach) as the cluster runs it: chaosloop observes it and
// created none of it.
type AttachedService struct {
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Selector  string `json:"selector"`
	// Replicas is the scenario's member count.
	Replicas int              `json:"replicas"`
	Members  []AttachedMember `json:"members"`
	// Findings are where the cluster differs from the scenario: a member
	// count, a member on another node than the scenario places it on.
	// Analyze's verdicts hold for the cluster only without them.
	Findings []string `json:"findings"`
	// Engine is what the engine's probe observed of the members (package
	// probe); nil when they were not probed, and NotProbed says why.
	Engine    *engines.Status `json:"engine,omitempty"`
	NotProbed string          `json:"notProbed,omitempty"`
}

// AttachedMember is member Index's pod: the pod of ordinal Index when the
// pods are a StatefulSet's (NAME-0, NAME-1, ...), else the Index-th by
// name.
type AttachedMember struct {
	Index int    `json:"index"`
	Pod   string `json:"pod"`
	// Node is the cluster node the pod runs on; Want, the cluster node of
	// the scenario node the member is placed on.
	Node string `json:"node"`
	Want string `json:"want"`
	// IP is the pod's address, "" before it has one.
	IP string `json:"ip,omitempty"`
	// Running: the pod runs and so does every one of its containers (its
	// processes may answer, Ready or not).
	Running bool `json:"running"`
	// Ready is the pod's Ready condition; NotReady says why not.
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
	Restarts int32  `json:"restarts"`
}

// Healthy reports whether every member's pod is Ready, the service has as
// many as the scenario says and, when its engine was probed, it takes
// writes with every member healthy.
func (s *AttachedService) Healthy() bool {
	if len(s.Members) != s.Replicas {
		return false
	}
	if s.Engine != nil {
		if !s.Engine.Writable {
			return false
		}
		for _, m := range s.Engine.Members {
			if !m.Healthy {
				return false
			}
		}
	}
	for _, m := range s.Members {
		if !m.Ready {
			return false
		}
	}
	return true
}

// Attached observes the scenario's attached services: each one's pods
// (namespace and selector), in member order, where they run against where
// the scenario places them, and whether they are Ready. It only reads.
func Attached(ctx context.Context, c *Cluster, topo *topology.Topology, m NodeMap) ([]AttachedService, error) {
	out := []AttachedService{}
	for _, sv := range topo.Services {
		if sv.Spec.Attach == nil {
			continue
		}
		as, err := AttachedOf(ctx, c, sv, m)
		if err != nil {
			return nil, err
		}
		out = append(out, as)
	}
	return out, nil
}

// AttachedOf observes one attached service, sv, as Attached does.
func AttachedOf(ctx context.Context, c *Cluster, sv *topology.Service, m NodeMap) (AttachedService, error) {
	a := sv.Spec.Attach
	if a == nil {
		return AttachedService{}, fmt.Errorf("service %s is not attached (services[].attach)", sv.Name)
	}
	if _, err := labels.Parse(a.Selector); err != nil {
		return AttachedService{}, fmt.Errorf("%s.attach.selector: %w", sv.Src, err)
	}
	return MemberPods(ctx, c, sv, m, a.Namespace, a.Selector, memberIndex)
}

// MemberPods observes a service's members as pods: those in namespace
// that selector selects (not being deleted), in ordinal order, index
// giving each one's member number; where each runs against where the
// scenario places it, and whether it is Ready.
func MemberPods(ctx context.Context, c *Cluster, sv *topology.Service, m NodeMap, namespace, selector string,
	index func(items []corev1.Pod, k int) int) (AttachedService, error) {
	pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return AttachedService{}, fmt.Errorf("service %s: listing pods %s in namespace %s: %w", sv.Name, selector, namespace, err)
	}
	items := slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
	slices.SortFunc(items, func(x, y corev1.Pod) int { return compareOrdinal(x.Name, y.Name) })
	as := AttachedService{Service: sv.Name, Namespace: namespace, Selector: selector, Replicas: len(sv.Members), Members: []AttachedMember{}, Findings: []string{}}
	if len(items) != len(sv.Members) {
		as.Findings = append(as.Findings, fmt.Sprintf("%d pods match, the scenario has %d members", len(items), len(sv.Members)))
	}
	for k, p := range items {
		i := index(items, k)
		am := AttachedMember{Index: i, Pod: p.Name, Node: p.Spec.NodeName, IP: p.Status.PodIP, Running: running(&p), Restarts: restarts(&p)}
		am.Ready, am.NotReady = podReady(&p)
		if i >= 0 && i < len(sv.Members) {
			am.Want = m.ClusterNode(sv.Members[i].Name)
			if am.Node != am.Want {
				on := "no node yet"
				if am.Node != "" {
					on = "node/" + am.Node
				}
				as.Findings = append(as.Findings, fmt.Sprintf("member %d (pod %s) runs on %s, the scenario places it on node/%s", i, p.Name, on, am.Want))
			}
		}
		as.Members = append(as.Members, am)
	}
	return as, nil
}

var ordinal = regexp.MustCompile(`^(.*?)(\d+)$`)

// memberIndex is the member number of items[k] (sorted by
// compareOrdinal): its ordinal when every pod is NAME-N with one NAME, as
// a StatefulSet's are, so that a pod missing for a while (deleted, not yet
// made again) leaves its member's place empty instead of shifting the
// next pods into it; else its place in the order.
func memberIndex(items []corev1.Pod, k int) int {
	var prefix string
	for j, p := range items {
		m := ordinal.FindStringSubmatch(p.Name)
		if m == nil || !strings.HasSuffix(m[1], "-") || (j > 0 && m[1] != prefix) {
			return k
		}
		prefix = m[1]
	}
	n, err := strconv.Atoi(ordinal.FindStringSubmatch(items[k].Name)[2])
	if err != nil {
		return k
	}
	return n
}

// compareOrdinal orders pod names as a StatefulSet numbers them: kafka-2
// before kafka-10.
func compareOrdinal(a, b string) int {
	ma, mb := ordinal.FindStringSubmatch(a), ordinal.FindStringSubmatch(b)
	if ma != nil && mb != nil && ma[1] == mb[1] {
		na, _ := strconv.Atoi(ma[2])
		nb, _ := strconv.Atoi(mb[2])
		if c := cmp.Compare(na, nb); c != 0 {
			return c
		}
	}
	return cmp.Compare(a, b)
}

func podReady(p *corev1.Pod) (bool, string) {
	if p.Status.Phase != corev1.PodRunning {
		return false, string(p.Status.Phase)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return true, ""
			}
			if c.Reason != "" {
				return false, "Ready=" + string(c.Status) + ", " + c.Reason
			}
			return false, "Ready=" + string(c.Status)
		}
	}
	return false, "no Ready condition"
}

// running: the pod's phase is Running and so is each of its containers.
func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n += cs.RestartCount
	}
	return n
}
