package engines

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func TestMemberDirsDropNested(t *testing.T) {
	m := Member{DataDir: "/lab/data/n1/svc", LogDir: "/lab/logs/n1/svc"}
	spec := proc.Spec{Dir: "/lab/data/n1/svc/pg", Log: "/lab/logs/n1/svc/x.out"}
	require.Equal(t, []string{"/lab/data/n1/svc", "/lab/logs/n1/svc"}, MemberDirs(m, spec))
}

func TestPodCommandLogsAndUser(t *testing.T) {
	byName := func(name string) (string, string, error) { return name, name, nil }
	cmd, err := PodCommand(proc.Spec{Path: "etcd", Args: []string{"--name", "a b"}, Log: "/l/etcd.log"}, byName)
	require.NoError(t, err)
	require.Equal(t, []string{"sh", "-c", `exec "$0" "$@" >>'/l/etcd.log' 2>&1`, "etcd", "--name", "a b"}, cmd)
	cmd, err = PodCommand(proc.Spec{Path: "id", User: "mysql"}, byName)
	require.NoError(t, err)
	require.Equal(t, []string{"setpriv", "--reuid=mysql", "--regid=mysql", "--clear-groups", "--", "id"}, cmd)
	_, err = PodCommand(proc.Spec{Path: "id", User: "nobody-here"}, func(string) (string, string, error) { return "", "", errors.New("no such user") })
	require.ErrorContains(t, err, "no such user")
}
