// Package root assembles the chaosloop command tree.
package root

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/analyze"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/down"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/enginescmd"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/fault"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/handler"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/judge"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/run"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/schema"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/status"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/up"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/validate"
)

// NewCommand returns the root command; env is filled before any subcommand
// runs (logger, colour) from the global flags.
func NewCommand(streams cli.Streams) *cobra.Command {
	env := &cli.Env{Streams: streams}
	var (
		verbosity int
		color     string
	)
	cmd := &cobra.Command{
		Use:   "chaosloop",
		Short: "Tell whether a Mojaloop deployment survives real data-centre failures",
		Long: `chaosloop analyzes a Mojaloop on-premises deployment described in a scenario
file — sites, racks, power feeds, switches, nodes and the services placed on
them — and tells, for every failure domain, which services keep quorum and which
go read-only or down.

Exit status: 0 success; 1 findings, a failure that breaks a service, or a
chaosloop error; 2 invalid scenario or usage; 3 safety violated; 4 liveness
violated or inconclusive (run, judge).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelWarn
			switch {
			case verbosity >= 2:
				level = slog.LevelDebug
			case verbosity == 1:
				level = slog.LevelInfo
			}
			env.Log = slog.New(slog.NewTextHandler(streams.Err, &slog.HandlerOptions{Level: level}))
			c, err := cli.UseColor(color, streams.Out)
			env.Color = c
			return err
		},
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.Err)
	cmd.SetIn(streams.In)
	cmd.PersistentFlags().CountVarP(&verbosity, "verbose", "v", "more logging (-v info, -vv debug)")
	cmd.PersistentFlags().StringVar(&color, "color", "auto", "colour output: auto, always or never")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cli.Usagef("%v\nSee '%s --help'.", err, c.CommandPath())
	})
	cmd.AddCommand(
		validate.NewCommand(env),
		analyze.NewCommand(env),
		schema.NewCommand(env),
		up.NewCommand(env),
		status.NewCommand(env),
		down.NewCommand(env),
		fault.NewFaultCommand(env),
		fault.NewHealCommand(env),
		enginescmd.NewCommand(env),
		handler.NewCommand(env),
		run.NewRunCommand(env),
		run.NewReplayCommand(env),
		judge.NewCommand(env),
	)
	for _, c := range cmd.Commands() {
		wrapArgs(c)
	}
	return cmd
}

// wrapArgs turns argument-count errors into usage errors (exit 2).
func wrapArgs(c *cobra.Command) {
	if c.Args == nil {
		return
	}
	args := c.Args
	c.Args = func(cmd *cobra.Command, a []string) error {
		if err := args(cmd, a); err != nil {
			return cli.Usagef("%v\nSee '%s --help'.", err, cmd.CommandPath())
		}
		return nil
	}
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Run executes chaosloop with args and returns the exit status.
func Run(ctx context.Context, streams cli.Streams, args []string) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		var ee *cli.ExitError
		if !errors.As(err, &ee) || ee.Err != nil {
			fmt.Fprintln(streams.Err, "chaosloop:", err)
		}
		if !errors.As(err, &ee) && isUsage(err) {
			return cli.ExitInvalid
		}
	}
	return cli.CodeOf(err)
}

// isUsage recognises cobra's own usage errors (unknown command).
func isUsage(err error) bool {
	msg := err.Error()
	return len(msg) > 16 && msg[:16] == "unknown command "
}
