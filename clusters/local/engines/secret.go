package engines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SecretFile is where member m's node keeps the cluster's secret name
// (a password of its service's accounts): in the labs, in c.StateDir,
// one file for every member; on a real cluster's nodes, beside the
// member's directories, since chaosloop's machine keeps no state of a
// cluster run.
func (c *Cluster) SecretFile(m Member, name string) string {
	if c.Remote() {
		return filepath.Join(filepath.Dir(m.DataDir), name)
	}
	return filepath.Join(c.StateDir, name)
}

// ReadSecret reads secret name from the first member's node that has
// it. The error wraps os.ErrNotExist only when every node said it has
// none.
func (c *Cluster) ReadSecret(ctx context.Context, name string) (string, error) {
	var errs []error
	for _, m := range c.members() {
		b, err := c.FS().ReadFile(ctx, m, c.SecretFile(m, name))
		if b = bytes.TrimSpace(b); err == nil && len(b) > 0 {
			return string(b), nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%s's %s: %w", c.Service, name, errors.Join(errs...))
	}
	return "", fmt.Errorf("%s's %s: %w", c.Service, name, os.ErrNotExist)
}

// Secret returns secret name, made with fresh only when no member's node
// has it and every one said so (a node that did not answer may have it,
// and a second value would split the service), and writes it, root's
// only, on the nodes that said they lack it (a member whose files a
// destroy removed). A node that does not answer (powered off) is left
// alone: it gets it at a later call.
func (c *Cluster) Secret(ctx context.Context, name string, fresh func() (string, error)) (string, error) {
	s, err := c.ReadSecret(ctx, name)
	if errors.Is(err, os.ErrNotExist) {
		s, err = fresh()
	}
	if err != nil {
		return "", err
	}
	fs := c.FS()
	for _, m := range c.members() {
		path := c.SecretFile(m, name)
		have, err := fs.ReadFile(ctx, m, path)
		if err == nil && string(bytes.TrimSpace(have)) == s || err != nil && !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := fs.MkdirAll(ctx, m, filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := fs.WriteFile(ctx, m, path, []byte(s+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("%s: write %s's %s: %w", m.Name, c.Service, name, err)
		}
	}
	return s, nil
}

// members are those whose nodes keep a copy of a secret: every member on
// a real cluster, the first (whose file every member shares) in the labs.
func (c *Cluster) members() []Member {
	if c.Remote() || len(c.Members) == 0 {
		return c.Members
	}
	return c.Members[:1]
}
