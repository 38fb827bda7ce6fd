package docstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// ensureSecret returns the secret the service's passwords derive from on
// a real cluster ("" in the labs: theirs are fixed), kept on the members'
// nodes (engines.Cluster.Secret).
func ensureSecret(ctx context.Context, c *engines.Cluster) (string, error) {
	if !c.Remote() {
		return "", nil
	}
	return c.Secret(ctx, c.Service+".docstore-secret", newSecret)
}

func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
