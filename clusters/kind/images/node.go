package images

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
)

// KindVersion is the sigs.k8s.io/kind module whose base files (entrypoint,
// units, scripts) the node image carries; it is the version in go.mod.
const KindVersion = "v0.33.0"

//go:embed files
var embedded embed.FS

func embeddedFile(name string, mode os.FileMode) file {
	b, err := embedded.ReadFile("files/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return file{content: string(b), mode: mode}
}

// NodePackages are the node's Debian packages: kind's base image's,
// with Debian's containerd, runc and CNI plugins in place of kind's builds.
var NodePackages = []string{
	"systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins",
	"iptables", "nftables", "ipset", "conntrack", "ebtables", "socat", "ethtool", "kmod",
	"iproute2", "util-linux", "mount", "libseccomp2", "pigz", "ca-certificates", "procps",
	// the API servers' client-side load balancer on every node
	"haproxy",
}

// kindFiles are kind's images/base/files from the kind module, but for its
// containerd configuration (ours is for Debian's containerd 1.6) and the
// fuse-overlayfs snapshotter unit (rootless only, not built here).
func kindFiles(ctx context.Context) (map[string]file, error) {
	dir, err := k8sbin.ModuleDir(ctx, "sigs.k8s.io/kind", KindVersion)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "images", "base", "files")
	files := map[string]file{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "etc/containerd/config.toml" || strings.Contains(rel, "fuse-overlayfs") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/local/bin/") || strings.HasPrefix(rel, "kind/bin/") {
			mode = 0o755
		}
		files[rel] = file{content: string(b), mode: mode}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kind's base files in %s: %w", root, err)
	}
	if _, ok := files["usr/local/bin/entrypoint"]; !ok {
		return nil, fmt.Errorf("kind %s has no images/base/files/usr/local/bin/entrypoint", KindVersion)
	}
	return files, nil
}

// nodeBase is the node's Debian image: packages, kind's files, ours.
func nodeBase(ctx context.Context) (debianImage, error) {
	files, err := kindFiles(ctx)
	if err != nil {
		return debianImage{}, err
	}
	files["etc/containerd/config.toml"] = embeddedFile("containerd-config.toml", 0o644)
	files["etc/systemd/system/kubelet.service.d/12-chaosloop.conf"] = embeddedFile("12-chaosloop.conf", 0o644)
	files["etc/systemd/system/chaosloop-images.service"] = embeddedFile("chaosloop-images.service", 0o644)
	files["etc/systemd/system/chaosloop-apiserver-lb.service"] = embeddedFile("chaosloop-apiserver-lb.service", 0o644)
	files["usr/local/bin/chaosloop-entrypoint"] = embeddedFile("chaosloop-entrypoint", 0o755)
	return debianImage{
		name: "kind-base",
		rootfs: rootfs{
			name: "kind-base", variant: "minbase", include: NodePackages, overlay: files,
			script: embeddedFile("node-customize.sh", 0o755).content,
		},
		// as kind's base image: systemd as PID 1 behind kind's entrypoint,
		// behind chaosloop's, which waits for a lab cluster's network
		// (STOPSIGNAL, which docker import refuses, is in nodeDockerfile)
		changes: []string{
			"ENV container=docker",
			`ENTRYPOINT ["/usr/local/bin/chaosloop-entrypoint", "/sbin/init"]`,
		},
	}, nil
}

// nodeBinaries go into the node's /usr/bin.
var nodeBinaries = []string{"kubelet", "kubeadm", "kubectl", "crictl"}

// nodeDockerfile adds the Kubernetes binaries and preloaded images to the
// base; no RUN, so nothing runs at build time. systemd stops cleanly on
// SIGRTMIN+3.
const nodeDockerfile = `FROM %s
COPY bin/ /usr/bin/
COPY kind/ /kind/
STOPSIGNAL SIGRTMIN+3
`

// node builds chaosloop/node:<hash> from the base and the binaries.
func (b *Builder) node(ctx context.Context, base debianImage, bins k8sbin.Set) (string, error) {
	cp := controlPlaneImages(bins)
	return b.buildOn(ctx, "image node", nodeTag(base, bins, cp), base, func(dir, baseTag string) error {
		return b.nodeContext(ctx, dir, baseTag, bins, cp)
	})
}

// buildOn builds tag with docker build on base's image, unless the daemon
// has it; fill lays the build context out in dir.
func (b *Builder) buildOn(ctx context.Context, step, tag string, base debianImage, fill func(dir, baseTag string) error) (string, error) {
	if docker.ImageExists(ctx, tag) {
		b.progress(step, "cached", tag)
		return tag, nil
	}
	baseTag, err := b.ensureDebianImage(ctx, base)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(b.Cache, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := fill(work, baseTag); err != nil {
		return "", err
	}
	b.progress(step, "building", "docker build "+tag)
	// The legacy builder: BuildKit is not part of Debian's docker.io.
	if _, err := docker.RunEnv(ctx, []string{"DOCKER_BUILDKIT=0"}, "build", "--quiet", "--tag", tag, work); err != nil {
		return "", err
	}
	b.progress(step, "done", tag)
	return tag, nil
}

// nodeTag names the node image by its inputs.
func nodeTag(base debianImage, bins k8sbin.Set, cp []archiveImage) string {
	parts := []string{base.tag(), nodeDockerfile, k8sbin.KubernetesVersion}
	for _, name := range nodeBinaries {
		parts = append(parts, name, bins[name].Key)
	}
	for _, im := range cp {
		parts = append(parts, im.key())
	}
	return Repository + "node:" + hashOf(parts...)
}

// nodeContext lays out the node image's build context in dir.
func (b *Builder) nodeContext(ctx context.Context, dir, baseTag string, bins k8sbin.Set, cp []archiveImage) error {
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	for _, name := range nodeBinaries {
		if err := os.Link(bins[name].Path, filepath.Join(dir, "bin", name)); err != nil {
			if err := copyFile(bins[name].Path, filepath.Join(dir, "bin", name)); err != nil {
				return err
			}
		}
	}
	files := map[string]file{
		"Dockerfile":   {content: fmt.Sprintf(nodeDockerfile, baseTag), mode: 0o644},
		"kind/version": {content: k8sbin.KubernetesVersion + "\n", mode: 0o644},
	}
	if err := writeTree(dir, files); err != nil {
		return err
	}
	imagesDir := filepath.Join(dir, "kind", "images")
	if err := os.MkdirAll(imagesDir, 0o755); err != nil {
		return err
	}
	for _, im := range cp {
		b.progress("image node", "building", "writing "+im.ref)
		if err := b.writeArchive(ctx, im, filepath.Join(imagesDir, im.fileName())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
