package docker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const bundleConfig = `{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},
"args":["/sbin/init"],"capabilities":{
"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_SYS_ADMIN"],
"effective":["CAP_CHOWN","CAP_SYS_RESOURCE"],
"permitted":["CAP_SYS_RESOURCE"],
"inheritable":["CAP_CHOWN"]}},
"linux":{"resources":{"memory":{"limit":18446744073709551615}}}}`

func TestMissingFromBoundingSet(t *testing.T) {
	// This VM's CapBnd: every capability up to 40 but CAP_SYS_RESOURCE (24).
	require.Equal(t, map[string]bool{"CAP_SYS_RESOURCE": true}, missingFrom(0x000001fffeffffff))
	require.Empty(t, missingFrom(^uint64(0)))
}

func TestDropCapsInBundle(t *testing.T) {
	out, changed, err := DropCapsInBundle([]byte(bundleConfig), map[string]bool{"CAP_SYS_RESOURCE": true})
	require.NoError(t, err)
	require.True(t, changed)
	var c struct {
		Process struct {
			Args         []string
			Capabilities map[string][]string
		}
		Linux json.RawMessage
	}
	require.NoError(t, json.Unmarshal(out, &c))
	require.Equal(t, map[string][]string{
		"bounding":    {"CAP_CHOWN", "CAP_SYS_ADMIN"},
		"effective":   {"CAP_CHOWN"},
		"permitted":   {},
		"inheritable": {"CAP_CHOWN"},
	}, c.Process.Capabilities)
	require.Equal(t, []string{"/sbin/init"}, c.Process.Args)
	require.Contains(t, string(out), `"limit":18446744073709551615`, "numbers are kept exactly")
}

func TestNothingToDropLeavesTheFileAlone(t *testing.T) {
	out, changed, err := DropCapsInBundle([]byte(bundleConfig), map[string]bool{"CAP_BPF": true})
	require.NoError(t, err)
	require.False(t, changed)
	require.Equal(t, bundleConfig, string(out))
	_, _, err = DropCaps([]byte("{"), nil)
	require.Error(t, err)
}

func TestDropCapsOfAnExecProcess(t *testing.T) {
	out, changed, err := DropCaps([]byte(`{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"]}}`),
		map[string]bool{"CAP_SYS_RESOURCE": true})
	require.NoError(t, err)
	require.True(t, changed)
	require.JSONEq(t, `{"args":["sh"],"capabilities":{"bounding":["CAP_KILL"]}}`, string(out))
}

func TestRuncArguments(t *testing.T) {
	args := []string{"--root", "/run/docker/runtime-runc/moby", "--log", "/x/log.json", "--log-format", "json",
		"create", "--bundle", "/b", "--pid-file", "/b/init.pid", "id1"}
	sub, i := subcommand(args)
	require.Equal(t, "create", sub)
	require.Equal(t, "/b", flagValue(args[i+1:], "bundle", "b"))
	args = []string{"--root", "/r", "exec", "--process=/tmp/p.json", "--detach", "id1"}
	sub, i = subcommand(args)
	require.Equal(t, "exec", sub)
	require.Equal(t, "/tmp/p.json", flagValue(args[i+1:], "process", "p"))
	sub, _ = subcommand([]string{"--version"})
	require.Empty(t, sub)
}

func TestRewriteForCreate(t *testing.T) {
	missing, err := MissingCaps()
	require.NoError(t, err)
	if !missing["CAP_SYS_RESOURCE"] {
		t.Skip("this machine's bounding set has CAP_SYS_RESOURCE")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(bundleConfig), 0o600))
	require.NoError(t, rewriteFor([]string{"--root", "/r", "create", "-b", dir, "id"}))
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	require.NotContains(t, string(b), "CAP_SYS_RESOURCE")
}
