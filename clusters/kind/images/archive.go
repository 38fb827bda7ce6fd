package images

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/chaosloop/chaosloop/clusters/kind/k8sbin"
)

// archiveImage is an image written as a docker-archive tarball (what
// `ctr images import` and `docker load` read) without a daemon: a binary,
// on top of a Debian root filesystem when the program needs one.
type archiveImage struct {
	ref        string // the tag kubeadm expects
	bin        k8sbin.Binary
	at         string  // where the binary goes in the image
	base       *rootfs // nil: the binary alone
	entrypoint []string
}

func (a archiveImage) key() string {
	base := ""
	if a.base != nil {
		base = a.base.key()
	}
	return hashOf(a.ref, a.bin.Name, a.bin.Key, a.at, base, strings.Join(a.entrypoint, "\x00"))
}

func (a archiveImage) fileName() string {
	n := strings.NewReplacer("/", "_", ":", "_").Replace(strings.TrimPrefix(a.ref, "registry.k8s.io/"))
	return n + ".tar"
}

// imagePath is the PATH of every image built here.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// controlPlaneImages are the images kubeadm 1.34 runs, under its tags.
func controlPlaneImages(bins k8sbin.Set) []archiveImage {
	reg := "registry.k8s.io/"
	var ims []archiveImage
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		ims = append(ims, archiveImage{ref: reg + c + ":" + k8sbin.KubernetesVersion, bin: bins[c], at: "usr/local/bin/" + c})
	}
	proxyBase := kubeProxyBase()
	return append(ims,
		// kube-proxy programs iptables: it needs the iptables tools
		archiveImage{ref: reg + "kube-proxy:" + k8sbin.KubernetesVersion, bin: bins["kube-proxy"], at: "usr/local/bin/kube-proxy", base: &proxyBase},
		archiveImage{ref: reg + "etcd:" + k8sbin.EtcdVersion + "-0", bin: bins["etcd"], at: "usr/local/bin/etcd"},
		archiveImage{ref: reg + "coredns/coredns:v" + k8sbin.CoreDNSVersion, bin: bins["coredns"], at: "coredns", entrypoint: []string{"/coredns"}},
		archiveImage{ref: reg + "pause:" + k8sbin.PauseVersion, bin: bins["pause"], at: "pause", entrypoint: []string{"/pause"}},
	)
}

// kubeProxyBase is the smallest Debian that has iptables, ipset and
// conntrack (Essential packages and their dependencies, no apt).
func kubeProxyBase() rootfs {
	return rootfs{name: "kube-proxy-base", variant: "essential", include: []string{"iptables", "ipset", "conntrack", "nftables"}}
}

// writeArchive writes a's docker-archive tarball to path.
func (b *Builder) writeArchive(ctx context.Context, a archiveImage, path string) error {
	var layers []v1.Layer
	if a.base != nil {
		tarPath, err := b.rootfs(ctx, *a.base)
		if err != nil {
			return err
		}
		l, err := tarball.LayerFromFile(tarPath, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return fileTar(a.bin.Path, a.at) },
		tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, append(layers, l)...)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{imagePath}
	cfg.Config.Entrypoint = a.entrypoint
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	tag, err := name.NewTag(a.ref)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", a.ref, err)
	}
	return nil
}

// fileTar streams a tar holding one executable at path at.
func fileTar(src, at string) (io.ReadCloser, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, w := io.Pipe()
	go func() {
		defer f.Close()
		tw := tar.NewWriter(w)
		err := addDirs(tw, at)
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: at, Mode: 0o755, Size: st.Size()})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		if err == nil {
			err = tw.Close()
		}
		w.CloseWithError(err)
	}()
	return r, nil
}

// addDirs writes the parent directories of path (a/b/c: a/, a/b/).
func addDirs(tw *tar.Writer, path string) error {
	parts := strings.Split(path, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/") + "/"
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}); err != nil {
			return err
		}
	}
	return nil
}
