// Package fault implements `chaosloop fault` and `chaosloop heal`: inject
// one fault into a running lab by hand, and recover it.
package fault

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
)

// NewFaultCommand returns the fault command.
func NewFaultCommand(env *cli.Env) *cobra.Command {
	var (
		lf            cli.LabFlags
		lab           string
		delay, jitter time.Duration
		loss          float64
	)
	cmd := &cobra.Command{
		Use:   "fault ACTION TARGET",
		Short: "Inject one fault into a running lab (power-off, isolate, kill, pause, latency, destroy)",
		Long: `Fault injects one fault, as a scenario's faults: list would, into a running lab
and leaves it in place until 'chaosloop heal'. Targets are the spec's paths:
site/NAME, rack/SITE/NAME, node/NAME, feed/NAME, switch/NAME, link/A/B,
service/NAME/INDEX or service/NAME/leader. The fault is recorded in the lab's
state, so heal (or down) undoes it even after chaosloop was restarted.`,
		Example: `  chaosloop fault power-off rack/dc1/r1
  chaosloop fault isolate site/dc3
  chaosloop fault latency link/dc1/dc2 --delay 50ms --jitter 5ms
  chaosloop fault kill service/kafka/leader`,
		Args:      cobra.ExactArgs(2),
		ValidArgs: scenarios.Actions,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			l, err := open(cmd, env, &lf, lab)
			if err != nil {
				return err
			}
			af, err := l.Inject(cmd.Context(), local.Fault{Action: action, Target: target, Delay: delay, Jitter: jitter, Loss: loss})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "%s %s: in place (chaosloop heal %s %s to recover)\n", af.Action, af.Target, af.Action, af.Target)
			if action == scenarios.ActionLatency && (delay > 0 || jitter > 0) {
				// The userspace delayer lives in this process: keep it
				// serving until interrupted, then recover.
				fmt.Fprintln(env.Out, "delaying packets; press Ctrl-C to stop and recover")
				<-cmd.Context().Done()
				return l.Recover(cmd.Context(), local.Fault{Action: af.Action, Target: af.Target})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&lab, "lab", "", "lab name (default: the only lab that is up)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "latency: added delay per packet")
	cmd.Flags().DurationVar(&jitter, "jitter", 0, "latency: jitter (uniform ±)")
	cmd.Flags().Float64Var(&loss, "loss", 0, "latency: packet loss probability (0-1)")
	lf.Add(cmd)
	return cmd
}

// NewHealCommand returns the heal command.
func NewHealCommand(env *cli.Env) *cobra.Command {
	var (
		lf  cli.LabFlags
		lab string
	)
	cmd := &cobra.Command{
		Use:   "heal [ACTION TARGET]",
		Short: "Recover a fault injected into a lab (all of them without arguments)",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return cli.Usagef("heal takes ACTION TARGET, or nothing to heal every fault")
			}
			l, err := open(cmd, env, &lf, lab)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				if err := l.RecoverAll(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintln(env.Out, "every fault recovered")
				return nil
			}
			if err := l.Recover(cmd.Context(), local.Fault{Action: args[0], Target: args[1]}); err != nil {
				return err
			}
			fmt.Fprintf(env.Out, "%s %s: recovered\n", args[0], args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&lab, "lab", "", "lab name (default: the only lab that is up)")
	lf.Add(cmd)
	return cmd
}

func open(cmd *cobra.Command, env *cli.Env, lf *cli.LabFlags, lab string) (*local.Lab, error) {
	opts, err := lf.Options(env)
	if err != nil {
		return nil, err
	}
	var args []string
	if lab != "" {
		args = []string{lab}
	}
	name, err := cli.LabName(opts, args)
	if err != nil {
		return nil, err
	}
	return local.Open(cmd.Context(), opts, name)
}
