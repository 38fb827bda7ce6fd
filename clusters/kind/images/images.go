// Package images builds, offline, every container image the kind backend
// runs — nothing is ever pulled: no registry is reachable. A node image
// holds a Debian root filesystem (systemd, containerd, runc, CNI plugins,
// iptables from bookworm), kind's base files from the kind module, the
// kubelet, kubeadm and kubectl built by package k8sbin, and the
// control-plane images kubeadm expects, preloaded into the node's
// containerd before kubelet starts. Each image is tagged by a hash of its
// inputs (chaosloop/node:<hash>), so a build with the same inputs is a
// cache hit that does nothing.
//
// Engine images (chaosloop/engine-<name>, one per engine of the local lab)
// hold the same Debian packages, Kafka jars and FerretDB build as the local
// lab, at the same pinned versions and at the same paths.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
)

// Repository is the prefix of every image chaosloop builds.
const Repository = "chaosloop/"

// Builder builds the images into the Docker daemon that answers.
type Builder struct {
	// Cache holds what outlives an image: built binaries (bin/) and root
	// filesystem tars (rootfs/), by content hash.
	Cache string
	// EngineCache is the local lab's engine cache, where the Kafka jars
	// and FerretDB an engine image carries are fetched and built ("" =
	// Cache's parent, as chaosloop lays them out).
	EngineCache string
	Log         *slog.Logger
	// Progress, when set, is told each step's stage ("cached",
	// "building", "done", "failed") with a detail; one call at a time,
	// though Build works on two steps at once.
	Progress func(step, stage, detail string)
	// AgentBinary, when set, is a chaosloop binary Build makes the node
	// agent's image of (BuildAgent): the running chaosloop's, for --on
	// k3s.
	AgentBinary string

	progressMu sync.Mutex
}

// Built is what Build made or found.
type Built struct {
	// Node is the node image's tag, chaosloop/node:<hash>.
	Node string
	// Engines are the engine images' tags by engine name.
	Engines map[string]string
	// Agent is the node agent's image, "" without an AgentBinary.
	Agent string
	// Binaries are the Kubernetes, etcd, CoreDNS and pause binaries.
	Binaries k8sbin.Set
	Took     time.Duration
}

// Build builds every image missing from the daemon.
//
// The engine and agent images need no Kubernetes binary, so they are
// built while those compile: mmdebstrap waits mostly on the mirror and
// the disk, the Go build on the CPU. On a cold 2-core machine that takes
// minutes off the build (CI's time).
func (b *Builder) Build(ctx context.Context) (*Built, error) {
	start := time.Now()
	// Debian first: it needs no binaries, and fails fast without a mirror.
	base, err := nodeBase(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := b.rootfs(ctx, kubeProxyBase()); err != nil {
		return nil, err
	}
	if _, err := b.ensureDebianImage(ctx, base); err != nil {
		return nil, err
	}
	built := &Built{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		bins, err := (&k8sbin.Builder{Dir: filepath.Join(b.Cache, "bin"), Log: b.Log, Progress: b.progress}).Build(gctx)
		if err != nil {
			return err
		}
		built.Binaries = bins
		built.Node, err = b.node(gctx, base, bins)
		return err
	})
	g.Go(func() error {
		engines, err := b.buildEngines(gctx)
		if err != nil {
			return err
		}
		built.Engines = engines
		if b.AgentBinary != "" {
			built.Agent, err = b.BuildAgent(gctx, b.AgentBinary)
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	built.Took = time.Since(start)
	return built, nil
}

func (b *Builder) progress(step, stage, detail string) {
	if b.Progress != nil {
		b.progressMu.Lock()
		defer b.progressMu.Unlock()
		b.Progress(step, stage, detail)
	}
}

// hashOf is the content key of its parts (16 hex digits).
func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\x00", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// overlayKey hashes a file tree's paths, modes and contents.
func overlayKey(files map[string]file) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	parts := make([]string, 0, 3*len(paths))
	for _, p := range paths {
		parts = append(parts, p, files[p].mode.String(), files[p].content)
	}
	return hashOf(parts...)
}

// debianImage is an image made of a rootfs imported as it is, with the
// image settings (Dockerfile instructions) docker import takes.
type debianImage struct {
	name    string
	rootfs  rootfs
	changes []string // ENV, ENTRYPOINT, STOPSIGNAL, ...
}

// tag names d by its content.
func (d debianImage) tag() string {
	return Repository + d.name + ":" + hashOf(d.rootfs.key(), strings.Join(d.changes, "\x00"))
}

// ensureDebianImage imports d's rootfs unless its tag is there already.
func (b *Builder) ensureDebianImage(ctx context.Context, d debianImage) (string, error) {
	tag := d.tag()
	if docker.ImageExists(ctx, tag) {
		b.progress("image "+d.name, "cached", tag)
		return tag, nil
	}
	tarPath, err := b.rootfs(ctx, d.rootfs)
	if err != nil {
		return "", err
	}
	b.progress("image "+d.name, "building", "docker import")
	args := []string{"import"}
	for _, c := range d.changes {
		args = append(args, "--change", c)
	}
	if _, err := docker.Run(ctx, append(args, tarPath, tag)...); err != nil {
		return "", err
	}
	b.progress("image "+d.name, "done", tag)
	return tag, nil
}
