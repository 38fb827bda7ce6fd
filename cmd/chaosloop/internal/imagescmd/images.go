// Package imagescmd implements `chaosloop images build|list|prune`: the
// container images of the kind backend, built here offline and cached by
// content.
package imagescmd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/ociruntime"
)

// NewCommand returns the images command and its subcommands.
func NewCommand(env *cli.Env) *cobra.Command {
	var cache string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build, list and prune the container images of the kind backend",
		Long: `The kind backend runs only images built on this machine: no image registry is
used. 'images build' builds the node image (a Debian bookworm root filesystem,
kind's base files, kubelet/kubeadm/kubectl built from the k8s.io/kubernetes Go
module) with the control-plane images preloaded (kube-apiserver and friends,
etcd, CoreDNS, pause, under the tags kubeadm expects), and one image per engine
of the local lab (chaosloop/engine-etcd, -mariadb, -redis, -zookeeper, -kafka,
-docstore) from the same Debian packages, Kafka jars and FerretDB build, at the
same pinned versions, and the node agent's image (chaosloop/agent: Debian's
iptables and this chaosloop binary; --on k3s deploys it). Each image is tagged by
a hash of its inputs, so building again with the same inputs does nothing.
The first build takes 15-40 minutes on two cores (less on an idle machine);
later ones, under a second.

A Docker daemon is needed: the one that answers on /var/run/docker.sock, or
else a dockerd chaosloop starts with its own settings (addresses from
198.19.240.0/20, no IPv6).`,
		Example: `  sudo chaosloop images build
  chaosloop images list
  sudo chaosloop images prune`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&cache, "cache-dir", local.DefaultCache, "directory holding downloaded and built engines and images")
	_ = cmd.MarkPersistentFlagDirname("cache-dir")
	builder := func() *images.Builder {
		b := &images.Builder{Cache: filepath.Join(cache, "kind"), EngineCache: cache, Log: env.Log}
		// the node agent's image is of this very binary (--on k3s)
		if exe, err := os.Executable(); err == nil {
			b.AgentBinary = exe
		}
		return b
	}
	cmd.AddCommand(buildCommand(env, builder), listCommand(env, builder), pruneCommand(env, builder), pushCommand(env, builder))
	return cmd
}

func buildCommand(env *cli.Env, builder func() *images.Builder) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build every image the kind backend needs, unless already built",
		Example: `  sudo chaosloop images build
  sudo chaosloop images build --keep-daemon`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			steps := cli.NewSteps(env.Err)
			stop, err := daemon(ctx, env, steps, keep)
			if err != nil {
				steps.Close()
				return err
			}
			defer stop()
			b := builder()
			b.Progress = func(step, stage, detail string) {
				if stage == "cached" { // a step that ends as it starts
					stage, detail = "done", "cached "+detail
				}
				steps.Update(step, stage, detail)
			}
			built, err := b.Build(ctx)
			steps.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "node image %s\n", built.Node)
			names := slices.Sorted(maps.Keys(built.Engines))
			for _, name := range names {
				fmt.Fprintf(env.Out, "engine image %s\n", built.Engines[name])
			}
			if built.Agent != "" {
				fmt.Fprintf(env.Out, "agent image %s\n", built.Agent)
			}
			fmt.Fprintf(env.Out, "built in %s\n", built.Took.Round(time.Second))
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep-daemon", false, "leave running a dockerd this command started (the next kind cluster uses it)")
	return cmd
}

// daemon installs docker.io and makes sure a daemon answers; stop stops
// one it started, unless keep.
func daemon(ctx context.Context, env *cli.Env, steps *cli.Steps, keep bool) (stop func(), err error) {
	steps.Update("docker", "installing", "docker.io")
	if err := docker.EnsureInstalled(ctx, env.Log); err != nil {
		steps.Update("docker", "failed", err.Error())
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	d := &docker.Daemon{StateDir: docker.DefaultStateDir, Runtime: []string{exe, ociruntime.Use}, Log: env.Log}
	steps.Update("docker", "starting", "dockerd")
	started, err := d.Ensure(ctx)
	if err != nil {
		steps.Update("docker", "failed", err.Error())
		return nil, err
	}
	detail := "a daemon was running"
	if started {
		detail = "started dockerd"
	}
	steps.Update("docker", "done", detail)
	return func() {
		if started && !keep {
			if err := d.Stop(context.WithoutCancel(ctx)); err != nil {
				env.Log.Warn("stop dockerd", "err", err)
			}
		}
	}, nil
}

func listCommand(env *cli.Env, builder func() *images.Builder) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List chaosloop's images and image cache, and whether a build still makes them",
		Example: `  chaosloop images list
  chaosloop images list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			entries, err := builder().List(cmd.Context())
			if err != nil {
				return err
			}
			return show(env, &out, entries)
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	return cmd
}

func pruneCommand(env *cli.Env, builder func() *images.Builder) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the images and cache entries a build no longer makes",
		Example: `  sudo chaosloop images prune
  sudo chaosloop images prune -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			removed, err := builder().Prune(cmd.Context())
			if perr := show(env, &out, removed); err == nil {
				err = perr
			}
			return err
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	return cmd
}

func show(env *cli.Env, out *cli.Output, entries []images.Entry) error {
	if out.Structured() {
		if entries == nil {
			entries = []images.Entry{}
		}
		return out.Encode(env.Out, entries)
	}
	if docker.Ping(context.Background()) != nil {
		fmt.Fprintln(env.Err, "no Docker daemon answers: images in it are not shown")
	}
	tw := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSIZE\tCURRENT")
	for _, e := range entries {
		cur := "no"
		if e.Current {
			cur = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f MB\t%s\n", e.Kind, e.Name, float64(e.Size)/1e6, cur)
	}
	return tw.Flush()
}

func pushCommand(env *cli.Env, builder func() *images.Builder) *cobra.Command {
	var (
		out      cli.Output
		registry string
	)
	cmd := &cobra.Command{
		Use:   "push --registry HOST[:PORT][/PATH] [IMAGE...]",
		Short: "Put the images a cluster runs (engines, workers, the node agent) in a registry",
		Long: `Tags each image as REGISTRY/NAME:HASH (the tag it has here, so a cluster runs
exactly what was built here) and pushes it with the Docker daemon, whose
credentials (docker login) are used. IMAGE is one of etcd, mariadb, redis,
zookeeper, kafka, docstore, worker, agent; without any, all are pushed. Every
image must be built first ('images build'). A registry on loopback may be plain
HTTP; any other must be HTTPS or listed in the daemon's insecure-registries.
--on k3s's deploy mode takes the same --registry.`,
		Example: `  sudo chaosloop images push --registry registry.example.org/chaosloop
  sudo chaosloop images push --registry 127.0.0.1:5000 agent etcd -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			if registry == "" {
				return cli.Usagef("--registry is required: the registry to push to, HOST[:PORT][/PATH]")
			}
			b := builder()
			if _, err := images.RemoteRef(registry, images.Repository+"agent:x"); err != nil {
				return cli.Usagef("%v", err)
			}
			for _, a := range args {
				if !slices.Contains(b.Pushable(), a) {
					return cli.Usagef("no image %q: chaosloop's images are %s", a, strings.Join(b.Pushable(), ", "))
				}
			}
			ctx := cmd.Context()
			steps := cli.NewSteps(env.Err)
			stop, err := daemon(ctx, env, steps, false)
			if err != nil {
				steps.Close()
				return err
			}
			defer stop()
			b.Progress = func(step, stage, detail string) { steps.Update(step, stage, detail) }
			pushed, err := b.Push(ctx, registry, args...)
			steps.Close()
			if err != nil {
				return err
			}
			if out.Structured() {
				return out.Encode(env.Out, pushed)
			}
			tw := tabwriter.NewWriter(env.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tPUSHED AS\tDIGEST")
			for _, p := range pushed {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Remote, p.Digest)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&registry, "registry", "", "registry to push to: HOST[:PORT][/PATH]")
	out.Add(cmd, cli.FormatText, cli.FormatJSON, cli.FormatYAML)
	return cmd
}
