package cli

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/deploy"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// ClusterFlags name the cluster of --on k3s (a kubeconfig and one of its
// contexts, which must be named) and how the scenario's nodes map to its
// nodes.
type ClusterFlags struct {
	Kubeconfig, Context, NodeMap string
}

// Add registers the flags on cmd.
func (f *ClusterFlags) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Kubeconfig, "kubeconfig", "", "with --on k3s: the kubeconfig file (default: the files $KUBECONFIG lists, else ~/.kube/config, as kubectl)")
	cmd.Flags().StringVar(&f.Context, "context", "", "with --on k3s: the kubeconfig context of the cluster; required, the current context is never used unless named")
	cmd.Flags().StringVar(&f.NodeMap, "node-map", "", "with --on k3s: a YAML `FILE` of \"scenarioNode: clusterNode\" lines, for cluster nodes not named as the scenario's")
	_ = cmd.MarkFlagFilename("kubeconfig")
	_ = cmd.MarkFlagFilename("node-map", "yaml", "yml")
}

// Given reports whether any of the flags was set (they are only for
// --on k3s).
func (f *ClusterFlags) Given() bool { return f.Kubeconfig != "" || f.Context != "" || f.NodeMap != "" }

// Connect loads the node map for the scenario's topology and makes a
// client for the named context; nothing is asked of the cluster yet. An
// unnamed or unknown context, a missing kubeconfig and an invalid node map
// are the user's to fix (exit 2: the node map's problems on stderr).
func (f *ClusterFlags) Connect(ctx context.Context, env *Env, topo *topology.Topology) (*k3s.Cluster, k3s.NodeMap, error) {
	var m k3s.NodeMap
	if f.NodeMap != "" {
		var err error
		if m, err = k3s.LoadNodeMap(f.NodeMap, topo); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, Invalid(err)
			}
			return nil, nil, reportInvalid(ctx, env, err)
		}
	}
	c, err := k3s.Connect(env.Log, k3s.Access{Kubeconfig: f.Kubeconfig, Context: f.Context})
	switch {
	case k3s.IsContextError(err):
		return nil, nil, Usagef("%v", err)
	case err != nil:
		return nil, nil, Invalid(err)
	}
	return c, m, nil
}

// LoadBMC reads a BMC inventory (--bmc); "" is none. A missing or invalid
// file is the user's to fix (exit 2: each problem on stderr).
func LoadBMC(ctx context.Context, env *Env, file string) (*bmc.Inventory, error) {
	if file == "" {
		return nil, nil
	}
	inv, err := bmc.Load(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, Invalid(err)
		}
		return nil, reportInvalid(ctx, env, err)
	}
	return inv, nil
}

// DeployFlags say where the engines chaosloop deploys on a cluster come
// from (deploy mode of --on k3s: the services a scenario does not attach).
type DeployFlags struct {
	Registry   string
	PortOffset int
}

// Add registers the flags on cmd.
func (f *DeployFlags) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Registry, "registry", "", "with --on k3s: the registry (HOST[:PORT][/PATH]) 'chaosloop images push' put this chaosloop's engine images in; the scenario's services that are not attached are deployed from it")
	cmd.Flags().IntVar(&f.PortOffset, "port-offset", deploy.DefaultPortOffset, "with --on k3s: added to the ports of the engines chaosloop deploys, which listen on their nodes' addresses beside K3S's own and the adopter's (etcd on 2379+offset, Kafka on 9092+offset)")
}

// Check refuses the flags without --on k3s, and an offset that takes an
// engine's ports out of range.
func (f *DeployFlags) Check(on string) error {
	if on != "k3s" && (f.Registry != "" || f.PortOffset != deploy.DefaultPortOffset) {
		return Usagef("--registry and --port-offset work with --on k3s")
	}
	if f.PortOffset < 0 || f.PortOffset > deploy.MaxPortOffset {
		return Usagef("--port-offset must be from 0 to %d (an engine's highest port, 27017, plus it must stay a port)", deploy.MaxPortOffset)
	}
	return nil
}

// Image names an engine's image in --registry, as 'images push' with
// cache as its --cache-dir put it there; nil without a registry.
func (f *DeployFlags) Image(env *Env, cache string) func(string) (string, error) {
	if f.Registry == "" {
		return nil
	}
	b := &images.Builder{Cache: filepath.Join(cache, "kind"), EngineCache: cache, Log: env.Log}
	return func(engine string) (string, error) { return b.RemoteRefOf(f.Registry, engine) }
}

// K3sProvider is the k3s backend on the cluster the flags name: the
// scenario's attached services observed, the others deployed from
// --registry, with the BMC inventory of --bmc for power faults. A
// scenario whose services it can neither observe nor deploy is the
// user's to fix (exit 2).
func K3sProvider(ctx context.Context, env *Env, lf *LabFlags, cf *ClusterFlags, df *DeployFlags, sc *scenarios.Scenario, progress func(lab.Progress)) (*k3slab.Provider, error) {
	if err := df.Check(lf.On); err != nil {
		return nil, err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, Invalid(err)
	}
	load := k3slab.Drives(topo, df.Registry != "") == ""
	if err := k3slab.Observable(topo, df.Registry != "", load); err != nil {
		return nil, Invalid(err)
	}
	if df.Registry != "" {
		if _, err := images.RemoteRef(df.Registry, images.Repository+"etcd:x"); err != nil {
			return nil, Usagef("%v", err)
		}
	}
	c, m, err := cf.Connect(ctx, env, topo)
	if err != nil {
		return nil, err
	}
	inv, err := LoadBMC(ctx, env, lf.BMC)
	if err != nil {
		return nil, err
	}
	return k3slab.NewProvider(k3slab.Options{Cluster: c, NodeMap: m, BMC: inv, Log: env.Log, Progress: progress,
		Image: df.Image(env, lf.Cache), PortOffset: df.PortOffset, Load: load}), nil
}
