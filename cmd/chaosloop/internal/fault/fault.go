// Package fault implements `chaosloop fault` and `chaosloop heal`: inject
// one fault into a running lab by hand, and recover it.
package fault

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s/guard"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// NewFaultCommand returns the fault command.
func NewFaultCommand(env *cli.Env) *cobra.Command {
	var (
		lf            cli.LabFlags
		ref           cli.LabRef
		kf            k3sFlags
		delay, jitter time.Duration
		loss          float64
	)
	cmd := &cobra.Command{
		Use:   "fault [LAB] ACTION TARGET",
		Short: "Inject one fault into a running lab (power-off, isolate, kill, pause, latency, destroy)",
		Long: `Fault injects one fault, as a scenario's faults: list would, into a running lab
and leaves it in place until 'chaosloop heal'. Targets are the spec's paths:
site/NAME, rack/SITE/NAME, node/NAME, feed/NAME, switch/NAME, link/A/B,
service/NAME/INDEX or service/NAME/leader. The fault is recorded in the lab's
state, so heal (or down) undoes it even after chaosloop was restarted.

LAB is the lab's name or the scenario file it was stood up from; without it,
the only lab that is up.

With --on k3s (a real cluster; --context names it) LAB is the scenario FILE:
isolate and latency become rules the node agent applies on each node it
concerns (the agent must run: see 'chaosloop plan --on k3s'), each lifted by
the agents themselves --for after injection at the latest (a node cut off
the API server cannot learn of heal); power-off and destroy a BMC ForceOff
(--bmc FILE); kill service/NAME/INDEX of an attached service (the
scenario's services[].attach) deletes that member's pod, which its
controller makes again, and pause freezes that pod (its cgroup's freezer,
through the agent of its node) until heal. The fault is
recorded in the cluster (ConfigMap chaosloop/chaosloop-faults-NAME), so heal
works from any shell.

With --hold, fault stays and watches the cluster's stop conditions until --for
has passed or Ctrl-C, then recovers the fault: a node no fault concerns turning
NotReady (or deleted), or the API server not answering for --api-budget when
the faults do not take the control plane's quorum, recovers every fault of
the scenario at once and exits 5 with the reason.`,
		Example: `  chaosloop fault power-off rack/dc1/r1
  chaosloop fault quickstart isolate site/dc3
  chaosloop fault scenarios/quickstart.yaml isolate site/dc3
  chaosloop fault latency link/dc1/dc2 --delay 50ms --jitter 5ms
  chaosloop fault kill service/kafka/leader
  chaosloop fault site.yaml isolate site/dc3 --on k3s --context prod-dc --for 5m
  chaosloop fault site.yaml isolate node/w7 --on k3s --context prod-dc --for 2m --hold`,
		Args:              cobra.RangeArgs(2, 3),
		ValidArgsFunction: completeFault(&lf),
		RunE: func(cmd *cobra.Command, args []string) error {
			labArg, args := splitLab(args, 3)
			action, target := args[0], args[1]
			if !slices.Contains(scenarios.Actions, action) {
				return cli.Usagef("unknown action %q (one of %s)", action, strings.Join(scenarios.Actions, ", "))
			}
			tg, err := scenarios.ParseTarget(target)
			if err != nil {
				return cli.Usagef("%v", err)
			}
			if !slices.Contains(scenarios.ActionTargets(action), tg.Kind) {
				return cli.Usagef("%s cannot target a %s (it takes %s)", action, tg.Kind, strings.Join(scenarios.ActionTargets(action), ", "))
			}
			if action == scenarios.ActionLatency && delay == 0 && loss == 0 {
				return cli.Usagef("latency needs --delay (and optionally --jitter, --loss)")
			}
			if err := kf.check(lf.On); err != nil {
				return err
			}
			f := lab.Fault{Action: action, Target: target, Delay: delay, Jitter: jitter, Loss: loss}
			if lf.On == "k3s" {
				if kf.lifetime <= 0 {
					return cli.Usagef("--for must be positive")
				}
				n, err := k3sNemesis(cmd.Context(), env, &lf, &kf, labArg)
				if err != nil {
					return err
				}
				af, err := n.Inject(cmd.Context(), f)
				if err != nil {
					return k3sErr(err)
				}
				if kf.hold {
					return hold(cmd.Context(), env, n, af, &kf)
				}
				fmt.Fprintf(env.Out, "%s %s: in place on context %s (chaosloop heal %s %s %s --on k3s --context %s to recover)\n",
					af.Action, af.Target, n.Cluster.Context, labArg, af.Action, af.Target, n.Cluster.Context)
				return nil
			}
			l, err := open(cmd, env, &lf, &ref, labArg)
			if err != nil {
				return err
			}
			af, err := l.Inject(cmd.Context(), lab.Fault{Action: action, Target: target, Delay: delay, Jitter: jitter, Loss: loss})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "%s %s: in place (chaosloop heal %s %s to recover)\n", af.Action, af.Target, af.Action, af.Target)
			if action == scenarios.ActionLatency && (delay > 0 || jitter > 0) {
				// The userspace delayer lives in this process: keep it
				// serving until interrupted, then recover.
				fmt.Fprintln(env.Out, "delaying packets; press Ctrl-C to stop and recover")
				<-cmd.Context().Done()
				// Ctrl-C is how this fault ends, not a failure: recover
				// with a context the interrupt has not cancelled.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), time.Minute)
				defer cancel()
				if err := l.Recover(rctx, lab.Fault{Action: af.Action, Target: af.Target}); err != nil {
					return err
				}
				fmt.Fprintf(env.Out, "%s %s: recovered\n", af.Action, af.Target)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&delay, "delay", 0, "latency: added delay per packet")
	cmd.Flags().DurationVar(&jitter, "jitter", 0, "latency: jitter (uniform ±)")
	cmd.Flags().Float64Var(&loss, "loss", 0, "latency: packet loss probability (0-1)")
	cmd.Flags().DurationVar(&kf.lifetime, "for", defaultLifetime, "with --on k3s: the agents lift a network fault by themselves this long after it is injected")
	cmd.Flags().BoolVar(&kf.hold, "hold", false, "with --on k3s: stay until --for has passed (or Ctrl-C), watching the stop conditions, then recover the fault; a stop condition recovers every fault of the scenario and exits 5")
	cmd.Flags().DurationVar(&kf.apiBudget, "api-budget", guard.DefaultAPIBudget, "with --hold: how long the API server may not answer before that stops the fault, unless the fault takes the control plane's quorum")
	lf.Add(cmd)
	ref.Add(cmd)
	kf.cluster.Add(cmd)
	return cmd
}

// NewHealCommand returns the heal command.
func NewHealCommand(env *cli.Env) *cobra.Command {
	var (
		lf  cli.LabFlags
		ref cli.LabRef
		kf  k3sFlags
	)
	cmd := &cobra.Command{
		Use:   "heal [LAB] [ACTION TARGET]",
		Short: "Recover a fault injected into a lab (all of them without ACTION TARGET)",
		Long: `Heal recovers one fault in place in a lab (ACTION TARGET, as given to
'chaosloop fault'), or every fault without them: powered-off nodes come back
and their members are restarted, cut ports come up, paused members resume,
latency rules go. Faults are read from the lab's state, so heal works also
after the chaosloop that injected them was killed.

LAB is the lab's name or the scenario file it was stood up from; without it,
the only lab that is up. With --on k3s, LAB is the scenario FILE and the
faults are those recorded on the cluster --context names.`,
		Example: `  chaosloop heal
  chaosloop heal site.yaml --on k3s --context prod-dc --bmc bmc.yaml
  chaosloop heal power-off rack/dc1/r1
  chaosloop heal scenarios/quickstart.yaml isolate site/dc3`,
		Args:              cobra.RangeArgs(0, 3),
		ValidArgsFunction: completeFault(&lf),
		RunE: func(cmd *cobra.Command, args []string) error {
			labArg, args := splitLab(args, 3)
			if len(args) == 1 {
				// One argument alone is the lab.
				labArg, args = args[0], nil
			}
			if err := kf.check(lf.On); err != nil {
				return err
			}
			var l interface {
				Recover(context.Context, lab.Fault) error
				RecoverAll(context.Context) error
			}
			var err error
			if lf.On == "k3s" {
				l, err = k3sNemesis(cmd.Context(), env, &lf, &kf, labArg)
			} else {
				l, err = open(cmd, env, &lf, &ref, labArg)
			}
			if err != nil {
				return err
			}
			if len(args) == 0 {
				if err := l.RecoverAll(cmd.Context()); err != nil {
					return k3sErr(err)
				}
				fmt.Fprintln(env.Out, "every fault recovered")
				return nil
			}
			if err := l.Recover(cmd.Context(), lab.Fault{Action: args[0], Target: args[1]}); err != nil {
				return k3sErr(err)
			}
			fmt.Fprintf(env.Out, "%s %s: recovered\n", args[0], args[1])
			return nil
		},
	}
	lf.Add(cmd)
	ref.Add(cmd)
	kf.cluster.Add(cmd)
	return cmd
}

// splitLab takes the optional LAB off the front of ACTION TARGET
// arguments: with full arguments, the first is the lab.
func splitLab(args []string, full int) (string, []string) {
	if len(args) == full {
		return args[0], args[1:]
	}
	return "", args
}

func open(cmd *cobra.Command, env *cli.Env, lf *cli.LabFlags, ref *cli.LabRef, labArg string) (lab.Lab, error) {
	p, err := lf.Provider(env, 0, nil)
	if err != nil {
		return nil, err
	}
	name, err := ref.Resolve(cmd.Context(), env, p, labArg)
	if err != nil {
		return nil, err
	}
	return p.Open(cmd.Context(), name)
}

// completeFault completes [LAB] ACTION TARGET: the first argument is a lab
// or an action, then an action after a lab; targets are not completed.
func completeFault(lf *cli.LabFlags) cobra.CompletionFunc {
	labs := cli.CompleteLabs(lf)
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		switch {
		case len(args) == 0:
			out, d := labs(toComplete)
			return append(slices.Clone(scenarios.Actions), out...), d
		case len(args) == 1 && !slices.Contains(scenarios.Actions, args[0]):
			return scenarios.Actions, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
