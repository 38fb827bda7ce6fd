package images

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
)

// Entry is one image or cache entry.
type Entry struct {
	Kind string `json:"kind"` // image, rootfs or binaries
	Name string `json:"name"` // the image's tag, or the cache path
	Size int64  `json:"size"` // bytes
	// Current: what a build with this chaosloop makes (prune keeps it).
	Current bool `json:"current"`
}

// current are the image tags and cache paths a Build makes now.
func (b *Builder) current(ctx context.Context) (map[string]bool, error) {
	base, err := nodeBase(ctx)
	if err != nil {
		return nil, err
	}
	bins, err := (&k8sbin.Builder{Dir: filepath.Join(b.Cache, "bin"), Log: b.Log}).Planned(ctx)
	if err != nil {
		return nil, err
	}
	cur := map[string]bool{
		base.tag(): true, nodeTag(base, bins, controlPlaneImages(bins)): true,
		b.rootfsPath(base.rootfs): true, b.rootfsPath(kubeProxyBase()): true,
	}
	for _, d := range bins.Dirs() {
		cur[d] = true
	}
	for _, e := range b.engineEntries() {
		cur[e] = true
	}
	agent := agentBase()
	cur[agent.tag()], cur[b.rootfsPath(agent.rootfs)] = true, true
	if b.AgentBinary != "" {
		tag, err := AgentTag(b.AgentBinary)
		if err != nil {
			return nil, err
		}
		cur[tag] = true
	}
	return cur, nil
}

// List lists chaosloop's images in the daemon (when one answers) and its
// cache entries, marking those a build makes now.
func (b *Builder) List(ctx context.Context) ([]Entry, error) {
	cur, err := b.current(ctx)
	if err != nil {
		return nil, err
	}
	var entries []Entry
	if docker.Ping(ctx) == nil {
		out, err := docker.Run(ctx, "images", "--filter", "reference="+Repository+"*", "--format", "{{.Repository}}:{{.Tag}}")
		if err != nil {
			return nil, err
		}
		for _, tag := range strings.Fields(string(out)) {
			size, _ := docker.Run(ctx, "image", "inspect", "--format", "{{.Size}}", tag)
			n, _ := strconv.ParseInt(strings.TrimSpace(string(size)), 10, 64)
			entries = append(entries, Entry{Kind: "image", Name: tag, Size: n, Current: cur[tag]})
		}
	}
	for _, kind := range []struct{ name, dir string }{{"rootfs", "rootfs"}, {"binaries", "bin"}} {
		des, _ := os.ReadDir(filepath.Join(b.Cache, kind.dir))
		for _, de := range des {
			if strings.HasPrefix(de.Name(), ".") {
				continue
			}
			p := filepath.Join(b.Cache, kind.dir, de.Name())
			entries = append(entries, Entry{Kind: kind.name, Name: p, Size: duSize(p), Current: cur[p]})
		}
	}
	return entries, nil
}

// Prune removes what List shows and a build no longer makes: images built
// from other inputs, and their binaries and root filesystems.
func (b *Builder) Prune(ctx context.Context) ([]Entry, error) {
	entries, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []Entry
	// node images and engine images with extras first: they are built on
	// a base image
	rank := func(e Entry) int {
		switch {
		case strings.HasPrefix(e.Name, Repository+"node:"),
			e.Kind == "image" && strings.HasPrefix(e.Name, Repository+"engine-") && !strings.Contains(e.Name, "-base:"):
			return 0
		case e.Kind == "image":
			return 1
		}
		return 2
	}
	sort.SliceStable(entries, func(i, j int) bool { return rank(entries[i]) < rank(entries[j]) })
	for _, e := range entries {
		if e.Current {
			continue
		}
		if e.Kind == "image" {
			_, err = docker.Run(ctx, "image", "rm", e.Name)
		} else {
			err = os.RemoveAll(e.Name)
		}
		if err != nil {
			return removed, err
		}
		removed = append(removed, e)
	}
	return removed, nil
}

// duSize is the size of the files under p.
func duSize(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
