package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// Suite is the Debian release every image's root filesystem comes from:
// bookworm's systemd 252 still runs on a cgroup v1 host, and its
// containerd, runc and CNI plugins are what the node runs.
const Suite = "bookworm"

// rootfs is a Debian root filesystem made by mmdebstrap, kept as a tar in
// the cache under a hash of everything that decides its content.
type rootfs struct {
	name    string
	variant string   // mmdebstrap --variant
	include []string // Debian packages
	// overlay is copied over the tree (sync-in) before script runs.
	overlay map[string]file
	script  string // run in the chroot at the end
	// essentialHooks run once the Essential packages are in, before the
	// rest are installed ("$1" is the root).
	essentialHooks []string
}

// file is one file an image adds, with its mode.
type file struct {
	content string
	mode    os.FileMode
}

func (r rootfs) key() string {
	parts := []string{"rootfs", r.name, Suite, r.variant, strings.Join(r.include, ","), overlayKey(r.overlay), r.script}
	if len(r.essentialHooks) > 0 { // keys from before hooks existed stay
		parts = append(parts, strings.Join(r.essentialHooks, "\x00"))
	}
	return hashOf(parts...)
}

// rootfs returns the path of r's tar, running mmdebstrap unless the cache
// has it (the one step that needs Debian's mirror).
func (b *Builder) rootfs(ctx context.Context, r rootfs) (string, error) {
	tarPath := b.rootfsPath(r)
	if _, err := os.Stat(tarPath); err == nil {
		b.progress("rootfs "+r.name, "cached", filepath.Base(tarPath))
		return tarPath, nil
	}
	if err := install.Apt(ctx, b.Log, "mmdebstrap"); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(filepath.Dir(tarPath), ".build-"+r.name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	overlay := filepath.Join(work, "overlay")
	if err := writeTree(overlay, r.overlay); err != nil {
		return "", err
	}
	args := []string{"--mode=root", "--variant=" + r.variant, "--include=" + strings.Join(r.include, ","),
		// no documentation or translations: nothing reads them in a node
		"--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
	}
	for _, h := range r.essentialHooks {
		args = append(args, "--essential-hook="+h)
	}
	if len(r.overlay) > 0 {
		args = append(args, "--customize-hook=sync-in "+overlay+" /")
	}
	if r.script != "" {
		script := filepath.Join(work, "customize.sh")
		if err := os.WriteFile(script, []byte(r.script), 0o755); err != nil {
			return "", err
		}
		args = append(args, "--customize-hook=copy-in "+script+" /tmp",
			`--customize-hook=chroot "$1" sh -e /tmp/customize.sh`, `--customize-hook=rm "$1"/tmp/customize.sh`)
	}
	tmp := filepath.Join(work, "rootfs.tar")
	args = append(args, Suite, tmp)
	b.progress("rootfs "+r.name, "building", "mmdebstrap "+Suite+" ("+fmt.Sprint(len(r.include))+" packages, about a minute)")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mmdebstrap %s: %w\n%s", r.name, err, install.Tail(out))
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		return "", err
	}
	b.progress("rootfs "+r.name, "done", "built in "+time.Since(start).Round(time.Second).String())
	return tarPath, nil
}

func (b *Builder) rootfsPath(r rootfs) string {
	return filepath.Join(b.Cache, "rootfs", r.name+"-"+r.key()+".tar")
}

// writeTree writes files (path → file) under dir.
func writeTree(dir string, files map[string]file) error {
	for p, f := range files {
		dst := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(f.content), f.mode); err != nil {
			return err
		}
		// WriteFile's mode is masked by the umask
		if err := os.Chmod(dst, f.mode); err != nil {
			return err
		}
	}
	return nil
}
