package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// agentDockerfile puts the chaosloop binary where the agent's manifest
// (package agent) runs it.
const agentDockerfile = "FROM %s\nCOPY chaosloop /usr/local/bin/chaosloop\n"

// agentBase is the node agent's root file system: Debian's iptables (the
// agent applies its rules with it) and what it needs to run.
func agentBase() debianImage {
	return debianImage{name: "agent-base", rootfs: rootfs{name: "agent", variant: "minbase", include: []string{"iptables"}},
		changes: []string{"ENV " + imagePath}}
}

// BuildAgent builds the node agent's image of binary (a chaosloop
// binary), tagged by the binary's content, unless the daemon has it.
func (b *Builder) BuildAgent(ctx context.Context, binary string) (string, error) {
	tag, err := AgentTag(binary)
	if err != nil {
		return "", err
	}
	return b.buildOn(ctx, "image agent", tag, agentBase(), func(dir, baseTag string) error {
		if err := copyFile(binary, filepath.Join(dir, "chaosloop")); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(fmt.Sprintf(agentDockerfile, baseTag)), 0o644)
	})
}

// AgentTag names the agent's image of binary by its inputs: what
// BuildAgent makes and images push puts in a registry (RemoteRef).
func AgentTag(binary string) (string, error) {
	sum, err := fileSum(binary)
	if err != nil {
		return "", fmt.Errorf("agent image: %w", err)
	}
	return Repository + "agent:" + hashOf(agentBase().tag(), agentDockerfile, sum), nil
}

// fileSum is the SHA-256 of a file's content.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
