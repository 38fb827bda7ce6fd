package docstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// secretPath is where member m's node keeps the service's secret: beside
// the member's directories, which its pods mount, so root's only.
func secretPath(c *engines.Cluster, m engines.Member) string {
	return filepath.Join(filepath.Dir(m.DataDir), c.Service+".docstore-secret")
}

// ensureSecret returns the secret the service's passwords derive from on
// a real cluster ("" in the labs: theirs are fixed), kept on the members'
// nodes (chaosloop's machine keeps no state of a cluster run): the one
// some member's node has, member i's first, or a new one if none has it.
// It writes it on member i's node when that lacks it (its files wiped).
func ensureSecret(ctx context.Context, c *engines.Cluster, i int) (string, error) {
	if !c.Remote() {
		return "", nil
	}
	s, own, err := readSecret(ctx, c, i)
	if errors.Is(err, os.ErrNotExist) {
		s, err = newSecret()
	}
	if err != nil || own {
		return s, err
	}
	m := c.Members[i]
	if err := c.FS().WriteFile(ctx, m, secretPath(c, m), []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("%s: write the service's secret: %w", m.Name, err)
	}
	return s, nil
}

// readSecret reads the secret from member i's node, else from the first
// other member's that has it; own says it was member i's. An error
// wrapping os.ErrNotExist only when every node said it has none: a node
// that did not answer may have it, and a new one would split the service.
func readSecret(ctx context.Context, c *engines.Cluster, i int) (s string, own bool, err error) {
	var errs []error
	for k := range c.Members {
		m := c.Members[(i+k)%len(c.Members)]
		b, err := c.FS().ReadFile(ctx, m, secretPath(c, m))
		if b = bytes.TrimSpace(b); err == nil && len(b) > 0 {
			return string(b), k == 0, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
		}
	}
	if len(errs) > 0 {
		return "", false, fmt.Errorf("%s: the service's secret: %w", c.Service, errors.Join(errs...))
	}
	return "", false, fmt.Errorf("%s: the service's secret: %w", c.Service, os.ErrNotExist)
}

func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
