package kindlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// LoadImage puts an image of the Docker daemon into every node's
// containerd, where it is missing (kind's `load docker-image`: docker
// save once, streamed into each node's ctr; no registry).
func (c *Cluster) LoadImage(ctx context.Context, tag string) error {
	return c.LoadImageInto(ctx, tag, c.Plan.Nodes)
}

// LoadImageInto is LoadImage into some nodes only (those of the members
// that run the image). The imports run side by side, a few at a time:
// each is a node's containerd unpacking the archive, and one after the
// other they took most of a kind test's image loading (about 9 s per
// node and image on a 2-core machine).
func (c *Cluster) LoadImageInto(ctx context.Context, tag string, nodes []NodePlan) error {
	var missing []NodePlan
	for _, n := range nodes {
		if _, err := docker.Run(ctx, "exec", n.Container, "crictl", "inspecti", tag); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "chaosloop-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if _, err := docker.Run(ctx, "save", "--output", archive, tag); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(loadsAtOnce)
	for _, n := range missing {
		g.Go(func() error {
			f, err := os.Open(archive)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := docker.RunReader(ctx, f, "exec", "-i", n.Container, "ctr", "--namespace", "k8s.io", "images", "import", "-"); err != nil {
				return fmt.Errorf("kind: load %s into %s: %w", tag, n.Name, err)
			}
			c.log.Info("image loaded into the node", "image", tag, "node", n.Name)
			return nil
		})
	}
	return g.Wait()
}

// loadsAtOnce bounds the imports side by side: more only queue on the
// disk and the CPUs.
const loadsAtOnce = 3
