// Package handler implements the hidden `chaosloop internal handler --config
// FILE`: the workload's Mojaloop handlers (package load/handler) as a
// process of its own, which the runner starts inside a stateless service's
// node so that the node's faults hit them too.
package handler

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/agentcmd"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/load/handler"
)

// NewCommand returns the hidden `internal` command with its `handler` and
// `agent` subcommands.
func NewCommand(env *cli.Env) *cobra.Command {
	internal := &cobra.Command{
		Use:    "internal",
		Short:  "Processes chaosloop starts for itself",
		Hidden: true,
	}
	var (
		config string
		member int
	)
	run := &cobra.Command{
		Use:   "handler --config FILE",
		Short: "Run the transfer handlers (prepare/position and fulfil) until killed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if config == "" {
				return cli.Usagef("--config is required")
			}
			cfg, err := handler.ReadConfig(config)
			if err != nil {
				return cli.Invalid(err)
			}
			if member >= 0 {
				cfg.Name = fmt.Sprintf("%s-%d", cfg.Name, member)
			}
			err = handler.Run(cmd.Context(), env.Log, cfg)
			if cmd.Context().Err() != nil {
				return nil // stopped by a signal
			}
			if err == nil {
				err = errors.New("handlers stopped")
			}
			return err
		},
	}
	run.Flags().StringVar(&config, "config", "", "handler configuration (JSON, see load/handler.Config)")
	run.Flags().IntVar(&member, "member", -1, "the stateless service member this worker is (names its Kafka client)")
	internal.AddCommand(run, agentcmd.NewCommand(env))
	return internal
}
