package engines

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/proc"
)

func TestMemberPortOffset(t *testing.T) {
	m := Member{Addr: netip.MustParseAddr("198.18.1.10")}
	assert.Equal(t, uint16(2379), m.Port(2379), "the labs' members keep their engine's ports")
	m.PortOffset = 2000
	assert.Equal(t, uint16(4379), m.Port(2379))
	assert.Equal(t, "198.18.1.10:4380", m.AddrPort(2380).String())
}

func TestHostFiles(t *testing.T) {
	ctx := context.Background()
	c := &Cluster{}
	dir := filepath.Join(t.TempDir(), "a", "b")
	ok, err := c.FS().Exists(ctx, Member{}, dir)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, c.FS().MkdirAll(ctx, Member{}, dir, 0o700))
	ok, err = c.FS().Exists(ctx, Member{}, dir)
	require.NoError(t, err)
	assert.True(t, ok)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	f := filepath.Join(dir, "f")
	require.NoError(t, c.FS().WriteFile(ctx, Member{}, f, []byte("x\n"), 0o640))
	b, err := c.FS().ReadFile(ctx, Member{}, f)
	require.NoError(t, err)
	assert.Equal(t, "x\n", string(b))
	_, err = c.FS().ReadFile(ctx, Member{}, filepath.Join(dir, "none"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestRunOnceHere(t *testing.T) {
	c := &Cluster{}
	out, err := c.RunOnce(t.Context(), Member{}, proc.Spec{Path: "sh", Args: []string{"-c", "echo $X; pwd"}, Env: []string{"X=once"}, Dir: "/"})
	require.NoError(t, err)
	assert.Equal(t, "once\n/\n", string(out))
	_, err = c.RunOnce(t.Context(), Member{}, proc.Spec{Path: "false"})
	assert.Error(t, err)
}
