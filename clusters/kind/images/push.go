package images

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// AgentImage names the node agent's image among the pushable ones.
const AgentImage = "agent"

// Pushed is one image put in a registry.
type Pushed struct {
	Name   string `json:"name"`   // etcd, kafka, ..., worker, agent
	Local  string `json:"local"`  // chaosloop/NAME:HASH in the daemon
	Remote string `json:"remote"` // REGISTRY/NAME:HASH
	// Digest is the manifest's digest in the registry: what a pod spec
	// may pin.
	Digest string `json:"digest"`
}

// RemoteRef is where a chaosloop image (chaosloop/NAME:HASH) goes in
// registry (HOST[:PORT][/PATH]): REGISTRY/NAME:HASH, the same tag, so that
// a cluster runs what this machine built, by content. The registry must
// be named in full: a host with a dot or a port, or localhost (a bare
// word would be Docker Hub's namespace, which chaosloop never pushes to
// unasked).
func RemoteRef(registry, local string) (string, error) {
	rest, ok := strings.CutPrefix(local, Repository)
	img, tag, hasTag := strings.Cut(rest, ":")
	if !ok || !hasTag {
		return "", fmt.Errorf("%s is not a chaosloop image (%sNAME:TAG)", local, Repository)
	}
	reg := strings.TrimSuffix(registry, "/")
	host, _, _ := strings.Cut(reg, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		return "", fmt.Errorf("registry %q: want HOST[:PORT][/PATH] with a host that has a dot or a port, or localhost", registry)
	}
	ref, err := name.NewTag(reg+"/"+img+":"+tag, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("registry %q: %w", registry, err)
	}
	return ref.Name(), nil
}

// Pushable names the images a cluster runs (not the node image, which is
// kind's): each engine's, the workers', and the agent's when the Builder
// has an AgentBinary.
func (b *Builder) Pushable() []string {
	var names []string
	for _, e := range b.Engines() {
		names = append(names, e.Name)
	}
	if b.AgentBinary != "" {
		names = append(names, AgentImage)
	}
	return names
}

// localTag is the tag of a pushable image.
func (b *Builder) localTag(img string) (string, error) {
	if img == AgentImage {
		if b.AgentBinary == "" {
			return "", fmt.Errorf("no agent binary to make the agent's image of")
		}
		return AgentTag(b.AgentBinary)
	}
	for _, e := range b.Engines() {
		if e.Name == img {
			return e.Tag(), nil
		}
	}
	return "", fmt.Errorf("no image %q: chaosloop's images are %s", img, strings.Join(b.Pushable(), ", "))
}

// Push puts the named images (every pushable one when none is named) in
// registry with the Docker daemon's push (its credentials: docker login),
// and returns where each went. Every image must be built (images build);
// a missing one is an error naming them all, before anything is pushed.
func (b *Builder) Push(ctx context.Context, registry string, imgs ...string) ([]Pushed, error) {
	if len(imgs) == 0 {
		imgs = b.Pushable()
	}
	var out []Pushed
	var missing []string
	for _, img := range slices.Compact(slices.Sorted(slices.Values(imgs))) {
		local, err := b.localTag(img)
		if err != nil {
			return nil, err
		}
		remote, err := RemoteRef(registry, local)
		if err != nil {
			return nil, err
		}
		if !docker.ImageExists(ctx, local) {
			missing = append(missing, img+" ("+local+")")
		}
		out = append(out, Pushed{Name: img, Local: local, Remote: remote})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not built here: %s; build them first: chaosloop images build", strings.Join(missing, ", "))
	}
	for i, p := range out {
		step := "push " + p.Name
		b.progress(step, "building", "docker push "+p.Remote)
		if _, err := docker.Run(ctx, "tag", p.Local, p.Remote); err != nil {
			return nil, err
		}
		if _, err := docker.Run(ctx, "push", p.Remote); err != nil {
			b.progress(step, "failed", err.Error())
			return nil, err
		}
		digest, err := repoDigest(ctx, p.Remote)
		if err != nil {
			return nil, err
		}
		out[i].Digest = digest
		b.progress(step, "done", p.Remote+"@"+digest)
	}
	return out, nil
}

// repoDigest is the digest the daemon recorded for remote's repository
// when it pushed it.
func repoDigest(ctx context.Context, remote string) (string, error) {
	ref, err := name.NewTag(remote, name.StrictValidation)
	if err != nil {
		return "", err
	}
	raw, err := docker.Run(ctx, "image", "inspect", "--format", `{{range .RepoDigests}}{{println .}}{{end}}`, remote)
	if err != nil {
		return "", err
	}
	for _, d := range strings.Fields(string(raw)) {
		if repo, digest, ok := strings.Cut(d, "@"); ok && repo == ref.Context().Name() {
			return digest, nil
		}
	}
	return "", fmt.Errorf("docker push %s: the daemon recorded no digest for %s (%q)", remote, ref.Context().Name(), strings.TrimSpace(string(raw)))
}

// RemoteRefOf is where Push puts a pushable image (an engine's name,
// "etcd", or "agent") in registry: what a cluster pulls.
func (b *Builder) RemoteRefOf(registry, img string) (string, error) {
	local, err := b.localTag(img)
	if err != nil {
		return "", err
	}
	return RemoteRef(registry, local)
}
