package engines_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/clusters/local/engines/enginetest"
)

// silent are files whose node n1 does not answer.
type silent struct{ enginetest.MemFiles }

func (s silent) ReadFile(ctx context.Context, m engines.Member, p string) ([]byte, error) {
	if m.Node == "n1" {
		return nil, errors.New("n1 does not answer")
	}
	return s.MemFiles.ReadFile(ctx, m, p)
}

func (s silent) WriteFile(ctx context.Context, m engines.Member, p string, b []byte, mode os.FileMode) error {
	if m.Node == "n1" {
		return errors.New("n1 does not answer")
	}
	return s.MemFiles.WriteFile(ctx, m, p, b, mode)
}

// A cluster's secret is kept on every member's node, made only when
// every node says it has none, and written where a node says it lacks
// it; a node that does not answer is left alone.
func TestSecretOnACluster(t *testing.T) {
	c, files := enginetest.OnNodes("db", 3)
	ctx := t.Context()
	made := 0
	fresh := func() (string, error) { made++; return "s3cret", nil }
	s, err := c.Secret(ctx, "db.pw", fresh)
	require.NoError(t, err)
	assert.Equal(t, "s3cret", s)
	for i, f := range []string{"n0:/var/lib/chaosloop/s/db-0/db.pw", "n1:/var/lib/chaosloop/s/db-1/db.pw", "n2:/var/lib/chaosloop/s/db-2/db.pw"} {
		assert.Equal(t, "s3cret\n", files[f], "member %d", i)
	}

	// member 2's files wiped, member 1's node off: 2 gets it again
	delete(files, "n2:/var/lib/chaosloop/s/db-2/db.pw")
	c.Files = silent{files}
	s, err = c.Secret(ctx, "db.pw", fresh)
	require.NoError(t, err)
	assert.Equal(t, "s3cret", s)
	assert.Equal(t, "s3cret\n", files["n2:/var/lib/chaosloop/s/db-2/db.pw"])

	// only the silent node might have it: no new one
	delete(files, "n0:/var/lib/chaosloop/s/db-0/db.pw")
	delete(files, "n2:/var/lib/chaosloop/s/db-2/db.pw")
	_, err = c.Secret(ctx, "db.pw", fresh)
	require.ErrorContains(t, err, "n1 does not answer")
	assert.Equal(t, 1, made)
	_, err = c.ReadSecret(ctx, "db.pw")
	assert.False(t, errors.Is(err, os.ErrNotExist))
}

// In the labs the secret is one file in the state directory.
func TestSecretInTheLabs(t *testing.T) {
	dir := t.TempDir()
	c := &engines.Cluster{Service: "db", StateDir: dir, Members: []engines.Member{{Name: "db-0"}, {Name: "db-1"}}}
	_, err := c.ReadSecret(t.Context(), "db.pw")
	require.ErrorIs(t, err, os.ErrNotExist)
	s, err := c.Secret(t.Context(), "db.pw", func() (string, error) { return "x", nil })
	require.NoError(t, err)
	assert.Equal(t, "x", s)
	b, err := os.ReadFile(filepath.Join(dir, "db.pw"))
	require.NoError(t, err)
	assert.Equal(t, "x\n", string(b))
	st, err := os.Stat(filepath.Join(dir, "db.pw"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
