package kindlab

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestServiceObjectsAreHeadlessAndSelectTheMembers(t *testing.T) {
	var list struct {
		Kind  string
		Items []struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
			Spec     struct {
				ClusterIP                string
				PublishNotReadyAddresses bool
				Selector                 map[string]string
			}
		}
	}
	require.NoError(t, json.Unmarshal(ServiceObjects([]string{"ledger-db", "handlers"}), &list))
	require.Equal(t, "List", list.Kind)
	require.Len(t, list.Items, 3)
	require.Equal(t, "Namespace", list.Items[0].Kind)
	require.Equal(t, Namespace, list.Items[0].Metadata.Name)
	for i, name := range []string{"ledger-db", "handlers"} {
		sv := list.Items[i+1]
		require.Equal(t, "Service", sv.Kind)
		require.Equal(t, name, sv.Metadata.Name)
		require.Equal(t, Namespace, sv.Metadata.Namespace)
		require.Equal(t, "None", sv.Spec.ClusterIP)
		require.True(t, sv.Spec.PublishNotReadyAddresses)
		require.Equal(t, map[string]string{LabelService: name}, sv.Spec.Selector, "the label Pods gives its pods")
	}
}

// TestJoinManifest: the first node's manifest (kubeadm init's, no state
// flag) and a joined node's both become a joining member's.
func TestJoinManifest(t *testing.T) {
	initManifest := "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-advertise-peer-urls=https://198.18.0.2:2380\n    - --initial-cluster=n1=https://198.18.0.2:2380\n    - --name=n1\n"
	joined := "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-cluster=n2=https://198.18.0.3:2380,n1=https://198.18.0.2:2380\n    - --initial-cluster-state=existing\n    - --name=n2\n"
	ic := "n2=https://198.18.0.3:2380,n3=https://198.18.0.4:2380,n1=https://198.18.0.2:2380"
	for _, m := range []string{initManifest, joined} {
		out, err := joinManifest([]byte(m), ic)
		require.NoError(t, err)
		require.Contains(t, string(out), "\n    - --initial-cluster="+ic+"\n    - --initial-cluster-state=existing\n")
		require.Equal(t, 1, strings.Count(string(out), "--initial-cluster-state="))
		require.Contains(t, string(out), "    - --name=")
	}
	out, err := joinManifest([]byte(initManifest), "")
	require.NoError(t, err)
	require.Contains(t, string(out), "\n    - --initial-cluster=n1=https://198.18.0.2:2380\n    - --initial-cluster-state=existing\n", "kept, never new")
	_, err = joinManifest([]byte("spec: {}\n"), ic)
	require.Error(t, err)
}
