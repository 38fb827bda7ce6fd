package kindlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// LoadImage puts an image of the Docker daemon into every node's
// containerd, where it is missing (kind's `load docker-image`: docker
// save once, streamed into each node's ctr; no registry).
func (c *Cluster) LoadImage(ctx context.Context, tag string) error {
	return c.LoadImageInto(ctx, tag, c.Plan.Nodes)
}

// LoadImageInto is LoadImage into some nodes only (those of the members
// that run the image).
func (c *Cluster) LoadImageInto(ctx context.Context, tag string, nodes []NodePlan) error {
	var archive string
	for _, n := range nodes {
		if _, err := docker.Run(ctx, "exec", n.Container, "crictl", "inspecti", tag); err == nil {
			continue
		}
		if archive == "" {
			dir, err := os.MkdirTemp("", "chaosloop-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			archive = filepath.Join(dir, "image.tar")
			if _, err := docker.Run(ctx, "save", "--output", archive, tag); err != nil {
				return err
			}
		}
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		_, err = docker.RunReader(ctx, f, "exec", "-i", n.Container, "ctr", "--namespace", "k8s.io", "images", "import", "-")
		f.Close()
		if err != nil {
			return fmt.Errorf("kind: load %s into %s: %w", tag, n.Name, err)
		}
		c.log.Info("image loaded into the node", "image", tag, "node", n.Name)
	}
	return nil
}
