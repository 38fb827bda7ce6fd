package cli

import (
	"context"
	"errors"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/k3s/k3slab"
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

// K3sProvider is the k3s backend (attach mode: the scenario's services are
// the adopter's own, observed) on the cluster the flags name, with the
// BMC inventory of --bmc for power faults. A scenario whose services it
// cannot observe is the user's to fix (exit 2).
func K3sProvider(ctx context.Context, env *Env, lf *LabFlags, cf *ClusterFlags, sc *scenarios.Scenario, progress func(lab.Progress)) (*k3slab.Provider, error) {
	topo, err := topology.Build(sc)
	if err != nil {
		return nil, Invalid(err)
	}
	if err := k3slab.Observable(topo); err != nil {
		return nil, Invalid(err)
	}
	c, m, err := cf.Connect(ctx, env, topo)
	if err != nil {
		return nil, err
	}
	inv, err := LoadBMC(ctx, env, lf.BMC)
	if err != nil {
		return nil, err
	}
	return k3slab.NewProvider(k3slab.Options{Cluster: c, NodeMap: m, BMC: inv, Log: env.Log, Progress: progress}), nil
}
