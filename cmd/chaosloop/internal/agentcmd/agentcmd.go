// Package agentcmd implements the hidden `chaosloop internal agent`: the
// node agent of `--on k3s` (package clusters/k3s/agent), which its
// DaemonSet runs on every node.
package agentcmd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/k3s/agent"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns `agent`, a subcommand of `internal`.
func NewCommand(env *cli.Env) *cobra.Command {
	var (
		access    k3s.Access
		inCluster bool
		node      string
		scenario  string
		cleanup   bool
		cgroups   string
		stateDir  string
		killPod   string
		kill      []string
		relay     string
		relayMux  bool
		relayWait time.Duration
		silence   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "agent (--in-cluster | --kubeconfig FILE --context NAME) --node NAME --scenario NAME",
		Short: "Apply this node's chaosloop faults (iptables, pod freezes) until killed",
		Long: `Watches the node's desired faults (ConfigMap chaosloop/chaosloop-agent-NODE)
and applies them: network faults to this network namespace's iptables,
pauses as freezes of the pods' cgroups (--cgroups, --state-dir). Stopping the agent
leaves the faults in place: recovering them (chaosloop's heal) or cleaning
the node up (down) ends them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if relay != "" || relayMux {
				// run in the agent's pod by chaosloop (pod exec,
				// agent.Relays): a load client's connections leaving from
				// this node. Out is the process's standard output, an
				// unbuffered file: every byte goes at once.
				if relayWait <= 0 || silence <= 0 {
					return cli.Usagef("--relay-timeout and --relay-silence must be positive")
				}
				if relayMux {
					return agent.ServeRelays(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), relayWait, silence)
				}
				return agent.Relay(cmd.Context(), "tcp", relay, cmd.InOrStdin(), cmd.OutOrStdout(), relayWait, silence)
			}
			if killPod != "" {
				// one shot, run in the agent's pod by chaosloop (pod exec):
				// a deployed member's hard kill
				if cgroups == "" {
					return cli.Usagef("--kill-pod needs --cgroups")
				}
				n, err := agent.Kill(cgroups, killPod, kill)
				fmt.Fprintf(cmd.OutOrStdout(), "%d\n", n)
				return err
			}
			if cleanup {
				// a node whose agent is gone: its rules and freezes stay until
				// removed here, run on the node itself (whose cgroups and
				// state directory are at their own paths)
				if cgroups == "" {
					cgroups = "/sys/fs/cgroup"
				}
				if stateDir == "" {
					stateDir = agent.StateDir
				}
				return agent.Cleanup(cmd.Context(), env.Log, cgroups, stateDir)
			}
			if node == "" {
				node = os.Getenv("NODE_NAME")
			}
			if node == "" {
				return cli.Usagef("--node is required (or NODE_NAME)")
			}
			if scenario == "" {
				return cli.Usagef("--scenario is required: the status the agent writes is labelled with it")
			}
			var kube kubernetes.Interface
			if inCluster {
				if access.Kubeconfig != "" || access.Context != "" {
					return cli.Usagef("--in-cluster excludes --kubeconfig and --context")
				}
				rc, err := rest.InClusterConfig()
				if err != nil {
					return fmt.Errorf("in-cluster config: %w", err)
				}
				// the agent's own connection passes its isolate rules
				rc.Dial = agent.ExemptDialer().DialContext
				if kube, err = kubernetes.NewForConfig(rc); err != nil {
					return err
				}
			} else {
				c, err := k3s.Connect(env.Log, access)
				if k3s.IsContextError(err) {
					return cli.Usagef("%v", err)
				}
				if err != nil {
					return err
				}
				kube = c.Client
			}
			name := os.Getenv("POD_NAME")
			if name == "" {
				name, _ = os.Hostname()
			}
			err := agent.Run(cmd.Context(), env.Log, agent.Config{Kube: kube, Node: node, Agent: name, Scenario: scenario,
				Cgroups: cgroups, StateDir: stateDir})
			if cmd.Context().Err() != nil {
				return nil // stopped by a signal; the faults stay
			}
			if err == nil {
				err = errors.New("agent stopped")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&inCluster, "in-cluster", false, "use the pod's ServiceAccount")
	cmd.Flags().StringVar(&access.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: kubectl's)")
	cmd.Flags().StringVar(&access.Context, "context", "", "kubeconfig context (required without --in-cluster)")
	cmd.Flags().StringVar(&node, "node", "", "the node this agent runs on (default: $NODE_NAME)")
	cmd.Flags().BoolVar(&cleanup, "cleanup", false, "remove every chaosloop agent rule from this network namespace, thaw every pod the agent froze, and exit (on a node whose agent is gone; --cgroups defaults to /sys/fs/cgroup, --state-dir to "+agent.StateDir+")")
	cmd.Flags().StringVar(&cgroups, "cgroups", "", "the node's cgroup root (its /sys/fs/cgroup): pause freezes pods there")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "a directory on the node where the agent marks the pods it froze (kept across agent restarts)")
	cmd.Flags().StringVar(&killPod, "kill-pod", "", "send SIGKILL to the processes of the --kill containers of the pod with this UID on this node (found under --cgroups), print how many, and exit")
	cmd.Flags().StringSliceVar(&kill, "kill", nil, "container IDs of --kill-pod to kill (its sandbox is never killed)")
	cmd.Flags().StringVar(&relay, "relay", "", "connect to this TCP address (HOST:PORT) from this network namespace, subject to the node's isolate rules, print \"ok\" on a line, then relay standard input to it and its bytes to standard output until it closes, and exit (standard input's end half-closes it; a failed connect prints nothing and fails)")
	cmd.Flags().BoolVar(&relayMux, "relay-mux", false, "serve a yamux session on standard input and output until it ends: each stream names a TCP address (HOST:PORT) on its first line, is answered \"ok\" once connected from this network namespace (or \"error: ...\"), then carries the connection (how chaosloop's load client enters the cluster through this node)")
	cmd.Flags().DurationVar(&relayWait, "relay-timeout", 2*time.Second, "how long --relay's connect may take")
	cmd.Flags().DurationVar(&silence, "relay-silence", 4*time.Second, "how long --relay's peer may stay silent (no ACK) while data waits for it before the connection ends")
	cmd.Flags().StringVar(&scenario, "scenario", "", "the scenario whose faults these are (labels the agent's status)")
	return cmd
}
