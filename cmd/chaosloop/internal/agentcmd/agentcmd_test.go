package agentcmd_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

func run(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = root.Run(context.Background(), cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb}, args)
	return code, out.String(), errb.String()
}

// TestRelayFlag: `internal agent --relay` relays its standard streams to
// a loopback echo server, which replies after the input's end; a refused
// connection prints no handshake and fails.
func TestRelayFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := io.Copy(c, c); err == nil {
			_, _ = io.WriteString(c, "bye\n")
		}
	}()
	code, out, stderr := run("hello", "internal", "agent", "--relay", l.Addr().String())
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "ok\nhellobye\n", out)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := closed.Addr().String()
	require.NoError(t, closed.Close())
	code, out, stderr = run("", "internal", "agent", "--relay", addr, "--relay-timeout", "500ms")
	require.Equal(t, 1, code)
	require.Empty(t, out)
	require.Contains(t, stderr, "refused")
}
