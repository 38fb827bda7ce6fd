package bmc_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
)

const testPassword = "s3cret-Pa55word!"

// Every way Go shows a value shows a Secret as [redacted].
func TestSecretRedacts(t *testing.T) {
	s := bmc.NewSecret(testPassword)
	holder := struct {
		Password bmc.Secret
		Ptr      *bmc.Secret
	}{s, &s}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder))
	}
	j, err := json.Marshal(holder)
	require.NoError(t, err)
	txt, err := s.MarshalText()
	require.NoError(t, err)
	out = append(out, string(j), string(txt))
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("bmc", "password", s, "holder", holder, "ptr", &s)
	}
	out = append(out, logs.String())
	for _, o := range out {
		require.NotContains(t, o, testPassword)
		require.NotContains(t, o, "Pa55")
	}
	require.Contains(t, logs.String(), "[redacted]")
	require.Equal(t, `"[redacted]"`, string(j[strings.Index(string(j), ":")+1:strings.Index(string(j), ",")]))
}

// An inventory, marshalled or logged, holds where passwords are, not
// what they are; the errors of a password's source quote none.
func TestInventoryHoldsNoPassword(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BMC_WORKER_1_PASSWORD", testPassword)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets", "worker-2.password"), []byte(testPassword+"\n"), 0o600))
	data, err := os.ReadFile("testdata/valid-mixed.yaml")
	require.NoError(t, err)
	inv, err := bmc.Parse(filepath.Join(dir, "inventory.yaml"), data)
	require.NoError(t, err)

	j, err := json.Marshal(inv)
	require.NoError(t, err)
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("inventory", "inv", inv, "bmcs", inv.BMCs)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("inventory", "inv", inv)
	for _, o := range []string{string(j), logs.String(), fmt.Sprintf("%+v %#v", inv, inv)} {
		require.NotContains(t, o, testPassword)
	}
	require.Contains(t, string(j), `"passwordEnv":"BMC_WORKER_1_PASSWORD"`)
}

// Errors about a password's source say which source and what is wrong
// with it, never its content.
func TestPasswordSourceErrors(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long")
	require.NoError(t, os.WriteFile(long, []byte(strings.Repeat(testPassword, 300)), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	t.Setenv("BMC_EMPTY", "")
	cases := map[string]struct{ source, want string }{
		"unset env":    {"passwordEnv: BMC_NOT_SET_ANYWHERE", "environment variable BMC_NOT_SET_ANYWHERE (its BMC's passwordEnv) is not set or empty"},
		"empty env":    {"passwordEnv: BMC_EMPTY", "environment variable BMC_EMPTY (its BMC's passwordEnv) is not set or empty"},
		"missing file": {"passwordFile: nothing-here", "BMC password file: open " + filepath.Join(dir, "nothing-here") + ": no such file or directory"},
		"long file":    {"passwordFile: " + long, "is longer than 4096 bytes"},
		"empty file":   {"passwordFile: " + empty, "BMC password file " + empty + " is empty"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			yaml := "bmcs:\n  - {node: n1, protocol: ipmi, address: 127.0.0.1, username: u, " + c.source + "}\n"
			inv, err := bmc.Parse(filepath.Join(dir, "inventory.yaml"), []byte(yaml))
			require.NoError(t, err)
			_, err = bmc.New(t.Context(), slog.New(slog.DiscardHandler), inv.BMCs[0])
			require.ErrorContains(t, err, c.want)
			require.NotContains(t, err.Error(), testPassword)
		})
	}
}

// The literal password, the password put where a variable's name goes and
// the one in a URL are refused without being quoted.
func TestInvalidPasswordsNotQuoted(t *testing.T) {
	_, err := bmc.Load("testdata/invalid-passwords.yaml")
	require.Error(t, err)
	for _, pw := range []string{"hunter2-literal", "Tr0ub4dor&3", "correct horse"} {
		require.NotContains(t, err.Error(), pw)
	}
}
