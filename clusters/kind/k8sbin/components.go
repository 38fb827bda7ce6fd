package k8sbin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func components() []component {
	return []component{kubernetes(), etcd(), coredns(), crictl(), pause()}
}

func embedded(name string) string {
	b, err := buildmod.ReadFile("buildmod/" + name)
	if err != nil {
		panic(err) // the file is embedded at build time
	}
	return string(b)
}

// kubernetesLdflags stamp the version as Kubernetes' hack/lib/version.sh
// does: kubeadm picks its control-plane image tags from it.
func kubernetesLdflags() string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(KubernetesVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		for _, kv := range [][2]string{
			{"gitVersion", KubernetesVersion}, {"gitMajor", major}, {"gitMinor", minor},
			{"gitTreeState", "clean"}, {"buildDate", "1970-01-01T00:00:00Z"},
		} {
			flags = append(flags, fmt.Sprintf("-X %s.%s=%s", pkg, kv[0], kv[1]))
		}
	}
	return strings.Join(flags, " ")
}

func kubernetes() component {
	pkgs := make([]string, len(KubernetesCommands))
	for i, c := range KubernetesCommands {
		pkgs[i] = "k8s.io/kubernetes/cmd/" + c
	}
	return goComponent("kubernetes", KubernetesVersion, "8-25 min cold on 2 cores",
		map[string]string{"go.mod": embedded("kubernetes.mod")},
		append([]string{"build", "-trimpath", "-ldflags", kubernetesLdflags(), "-o", "OUT/"}, pkgs...),
		KubernetesCommands, versionCheck{"kubelet", "--version", "Kubernetes " + KubernetesVersion})
}

func etcd() component {
	return goComponent("etcd", EtcdVersion, "about 1 min cold",
		map[string]string{"go.mod": embedded("etcd.mod"), "main.go": embedded("etcd.main.go.txt")},
		[]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", "OUT/etcd", "."},
		[]string{"etcd"}, versionCheck{"etcd", "--version", "etcd Version: " + EtcdVersion})
}

func coredns() component {
	return goComponent("coredns", CoreDNSVersion, "about 3 min cold",
		map[string]string{"go.mod": embedded("coredns.mod")},
		[]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", "OUT/coredns", "github.com/coredns/coredns"},
		[]string{"coredns"}, versionCheck{"coredns", "-version", "CoreDNS-" + CoreDNSVersion})
}

// crictl is the CRI client kind's log collection (and a person debugging
// a node) runs; cri-tools is not in bookworm.
func crictl() component {
	return goComponent("crictl", CrictlVersion, "about 1 min cold",
		map[string]string{"go.mod": embedded("crictl.mod")},
		[]string{"build", "-trimpath", "-ldflags", "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v" + CrictlVersion,
			"-o", "OUT/crictl", "sigs.k8s.io/cri-tools/cmd/crictl"},
		[]string{"crictl"}, versionCheck{"crictl", "--version", "crictl version v" + CrictlVersion})
}

// versionCheck is how a built binary proves it is the version wanted.
type versionCheck struct{ bin, flag, want string }

// goComponent is built by one go command (args, with OUT/ for the output
// directory) in a build module made of files.
func goComponent(name, version, hint string, files map[string]string, args, bins []string, check versionCheck) component {
	return component{
		name: name, version: version, files: files, recipe: args, bins: bins, hint: hint,
		build: func(ctx context.Context, b *Builder, src, out string) error {
			if err := run(goCmd(ctx, src, outArgs(args, out)...)); err != nil {
				return err
			}
			return checkVersion(ctx, filepath.Join(out, check.bin), check.want, check.flag)
		},
	}
}

// pause is compiled from build/pause/linux/pause.c of the kubernetes
// module, as its Makefile does, static so it runs in an empty image.
func pause() component {
	cflags := []string{"-Os", "-Wall", "-Werror", "-static", "-DVERSION=v" + PauseVersion}
	return component{
		name: "pause", version: PauseVersion,
		files:  map[string]string{"go.mod": embedded("kubernetes.mod")},
		recipe: append([]string{"gcc", "k8s.io/kubernetes@" + KubernetesVersion + "/build/pause/linux/pause.c"}, cflags...),
		bins:   []string{"pause"}, hint: "seconds",
		build: func(ctx context.Context, b *Builder, src, out string) error {
			dir, err := ModuleDir(ctx, "k8s.io/kubernetes", KubernetesVersion)
			if err != nil {
				return err
			}
			c := filepath.Join(dir, "build", "pause", "linux", "pause.c")
			gcc := append(append([]string{}, cflags...), "-o", filepath.Join(out, "pause"), c)
			if err := run(exec.CommandContext(ctx, "gcc", gcc...)); err != nil {
				return fmt.Errorf("building pause needs gcc and a static libc (Debian's gcc, libc6-dev): %w", err)
			}
			return checkVersion(ctx, filepath.Join(out, "pause"), "v"+PauseVersion, "-v")
		},
	}
}

// outArgs puts the output directory in place of OUT (the recipe, hashed
// into the key, must not name the directory named by the key).
func outArgs(args []string, out string) []string {
	res := make([]string, len(args))
	for i, a := range args {
		if rest, ok := strings.CutPrefix(a, "OUT/"); ok {
			a = out + "/" + rest
		}
		res[i] = a
	}
	return res
}

// checkVersion runs a built binary and wants want in what it prints.
func checkVersion(ctx context.Context, bin, want string, args ...string) error {
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if !bytes.Contains(out, []byte(want)) {
		return fmt.Errorf("%s %s printed %q, want %q", bin, strings.Join(args, " "), bytes.TrimSpace(out), want)
	}
	return nil
}

// ModuleDir downloads a module version into the Go module cache (or finds
// it there) and returns its directory, read-only as the cache keeps it.
func ModuleDir(ctx context.Context, path, version string) (string, error) {
	dl, err := goCmd(ctx, os.TempDir(), "mod", "download", "-json", path+"@"+version).Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(dl, &mod); err != nil || jerr != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s", path, version, err, mod.Error)
	}
	return mod.Dir, nil
}
