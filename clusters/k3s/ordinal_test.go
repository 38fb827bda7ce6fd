package k3s

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A StatefulSet's pod missing for a while (killed, not yet made again)
// leaves its member's place empty: the pods after it keep their members.
func TestMemberIndexByOrdinal(t *testing.T) {
	indexes := func(names ...string) []int {
		var items []corev1.Pod
		for _, n := range names {
			items = append(items, corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
		slices.SortFunc(items, func(x, y corev1.Pod) int { return compareOrdinal(x.Name, y.Name) })
		var out []int
		for k := range items {
			out = append(out, memberIndex(items, k))
		}
		return out
	}
	assert.Equal(t, []int{0, 1, 2}, indexes("etcd-2", "etcd-0", "etcd-1"))
	assert.Equal(t, []int{0, 2}, indexes("etcd-0", "etcd-2"), "etcd-1's pod is missing")
	assert.Equal(t, []int{1, 2, 10}, indexes("kafka-10", "kafka-2", "kafka-1"))
	assert.Equal(t, []int{0, 1}, indexes("etcd-a", "etcd-b"), "no ordinals: in order")
	assert.Equal(t, []int{0, 1}, indexes("db-0", "cache-1"), "two StatefulSets' pods: in order")
	assert.Equal(t, []int{0, 1}, indexes("etcd0", "etcd1"), "NAME-N only")
}
