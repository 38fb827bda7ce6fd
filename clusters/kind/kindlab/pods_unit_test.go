package kindlab

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func TestPodName(t *testing.T) {
	require.Equal(t, "cache-0.redis", PodName("cache-0.redis"))
	require.Equal(t, "dc1-r1-n1.etcd", PodName("DC1_r1_n1.etcd"))
}

func TestPodCommandAsHostUser(t *testing.T) {
	cmd, err := engines.PodCommand(proc.Spec{Path: "id", User: "root"}, hostUsers("x"))
	require.NoError(t, err)
	require.Equal(t, []string{"setpriv", "--reuid=0", "--regid=0", "--clear-groups", "--", "id"}, cmd)
}

func TestManifestPinsTheMember(t *testing.T) {
	p := &Pods{Image: "chaosloop/engine-etcd:x", Service: "k3s-etcd"}
	b, err := p.manifest(engines.Member{Name: "k3s-etcd-0", Node: "dc1-cp", DataDir: "/lab/data/dc1-cp/k3s-etcd"},
		proc.Spec{Name: "k3s-etcd-0.etcd", Path: "etcd", Env: []string{"A=b=c"}})
	require.NoError(t, err)
	var pod struct {
		Metadata struct{ Name string }
		Spec     struct {
			NodeName      string
			HostNetwork   bool
			RestartPolicy string
			Containers    []struct {
				Image, ImagePullPolicy string
				Env                    []struct{ Name, Value string }
			}
			Volumes []struct {
				HostPath struct{ Path string }
			}
		}
	}
	require.NoError(t, json.Unmarshal(b, &pod))
	require.Equal(t, "k3s-etcd-0.etcd", pod.Metadata.Name)
	require.Equal(t, "dc1-cp", pod.Spec.NodeName)
	require.True(t, pod.Spec.HostNetwork)
	require.Equal(t, "Never", pod.Spec.RestartPolicy)
	require.Equal(t, "Never", pod.Spec.Containers[0].ImagePullPolicy)
	require.Equal(t, "b=c", pod.Spec.Containers[0].Env[0].Value)
	require.Equal(t, "/lab/data/dc1-cp/k3s-etcd", pod.Spec.Volumes[0].HostPath.Path)
}

// Kubectl makes a request again only when an API server that was not
// ready refused it, never after one that may have been carried out.
func TestNotCarriedOut(t *testing.T) {
	exit := errors.New("exit status 1")
	for out, want := range map[string]bool{
		`E1202 18:55:17.163216 memcache.go:265] "Unhandled Error" err="couldn't get current server API group list: unknown"` + "\nError from server (Forbidden): unknown: ": true,
		"The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?\ndial tcp 127.0.0.1:6444: connect: connection refused":           true,
		"Error from server (ServiceUnavailable): the server is currently unable to handle the request":                                                                      true,
		`Error from server (Forbidden): pods "x" is forbidden: unable to create new content in namespace chaosloop because it is being terminated`:                          false,
		"Error from server (Timeout): the server was unable to return a response in the time allotted":                                                                      false,
		`Error from server (AlreadyExists): pods "x" already exists`:                                                                                                        false,
		"Unable to connect to the server: net/http: TLS handshake timeout":                                                                                                  false,
	} {
		require.Equal(t, want, notCarriedOut(exit, []byte(out)), out)
	}
}
