package up

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/clusters/kind/images"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology"
)

// k3sFlags are up's flags for --on k3s.
type k3sFlags struct {
	cluster    cli.ClusterFlags
	registry   string
	agentImage string
	wait       time.Duration
}

func (f *k3sFlags) add(cmd *cobra.Command) {
	f.cluster.Add(cmd)
	cmd.Flags().StringVar(&f.registry, "registry", "", "with --on k3s: the registry (HOST[:PORT][/PATH]) 'chaosloop images push' put this chaosloop's images in; the nodes pull the agent's from it")
	cmd.Flags().StringVar(&f.agentImage, "agent-image", "", "with --on k3s: the node agent's image reference, instead of the one --registry holds for this binary")
	cmd.Flags().DurationVar(&f.wait, "wait", 3*time.Minute, "with --on k3s: how long the agents may take to run on every node")
}

// check refuses the k3s flags where they would be ignored.
func (f *k3sFlags) check(on string) error {
	if on != "k3s" && (f.cluster.Given() || f.registry != "" || f.agentImage != "") {
		return cli.Usagef("--kubeconfig, --context, --node-map, --registry and --agent-image are for --on k3s")
	}
	if on == "k3s" && (f.registry == "") == (f.agentImage == "") {
		return cli.Usagef("--on k3s needs --registry (where 'chaosloop images push' put the images) or --agent-image")
	}
	if f.wait <= 0 {
		return cli.Usagef("--wait must be positive")
	}
	return nil
}

// upK3s deploys the scenario's node agent on the cluster --context names
// and waits until it runs on every scenario node the cluster has: what
// fault and heal --on k3s need. The services are not deployed: run does
// that (deploy mode).
func upK3s(ctx context.Context, env *cli.Env, f *k3sFlags, file string) error {
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	topo, err := topology.Build(sc)
	if err != nil {
		return cli.Invalid(err)
	}
	image := f.agentImage
	if image == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		local, err := images.AgentTag(exe)
		if err != nil {
			return err
		}
		if image, err = images.RemoteRef(f.registry, local); err != nil {
			return cli.Invalid(err)
		}
	}
	m, err := agent.NewManifest(image, topo.Name)
	if err != nil {
		return cli.Invalid(err)
	}
	c, nm, err := f.cluster.Connect(ctx, env, topo)
	if err != nil {
		return err
	}
	// one list, not a Get per node: a cluster of hundreds of nodes
	list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	byName := map[string]*corev1.Node{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	var nodes []string
	for _, n := range topo.Nodes {
		cn := nm.ClusterNode(n.Name)
		node, ok := byName[cn]
		if !ok {
			fmt.Fprintf(env.Err, "chaosloop: scenario node %s: no cluster node %s (name it in --node-map); no agent waited for there\n", n.Name, cn)
			continue
		}
		if ready, why := k3s.IsReady(node); !ready {
			fmt.Fprintf(env.Err, "chaosloop: node/%s is not Ready (%s); no agent waited for there\n", cn, why)
			continue
		}
		nodes = append(nodes, cn)
	}
	start := time.Now()
	if err := agent.Deploy(ctx, c.Client, m); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "node agent of scenario %s (%s) applied on context %s; waiting for it on %d nodes\n", topo.Name, image, c.Context, len(nodes))
	ac := &agent.Client{Kube: c.Client, Log: env.Log, Scenario: topo.Name}
	err = ac.WaitRunning(ctx, nodes, f.wait, func(node string) {
		fmt.Fprintf(env.Out, "  node/%s: agent running (%s)\n", node, time.Since(start).Round(100*time.Millisecond))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "scenario %s: agents running on %d nodes after %s; fault and heal --on k3s work now.\n", topo.Name, len(nodes), time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(env.Out, "  services: not deployed by up (run --on k3s --registry R deploys those the scenario does not attach)\n")
	fmt.Fprintf(env.Out, "  chaosloop down %s --on k3s --context %s --yes    # remove what up made\n", file, c.Context)
	return nil
}
