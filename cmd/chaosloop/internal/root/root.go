// Package root assembles the chaosloop command tree.
package root

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/analyze"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/crash"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/down"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/enginescmd"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/export"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/fault"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/handler"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/imagescmd"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/initcmd"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/judge"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/label"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/ociruntime"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/plan"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/run"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/schema"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/status"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/up"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/validate"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/versioncmd"
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
violated or inconclusive (run, judge); 130 or 143 interrupted by SIGINT
(Ctrl-C) or SIGTERM. A second Ctrl-C ends chaosloop at once, skipping the
cleanup a lab command does after the first (then 'chaosloop heal' or
'chaosloop down' finishes it).`,
		Example: `  chaosloop init --sites 3 > my-switch.yaml
  chaosloop validate my-switch.yaml
  chaosloop analyze my-switch.yaml --depth 2 --limit 20
  sudo chaosloop run scenarios/quickstart.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versioncmd.Read().Short(),
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
		imagescmd.NewCommand(env),
		handler.NewCommand(env),
		run.NewRunCommand(env),
		run.NewReplayCommand(env),
		judge.NewCommand(env),
		versioncmd.NewCommand(env),
		initcmd.NewCommand(env),
		export.NewCommand(env),
		label.NewCommand(env),
		plan.NewCommand(env),
		ociruntime.NewCommand(),
	)
	for _, c := range cmd.Commands() {
		wrapArgs(c)
	}
	return cmd
}

// wrapArgs turns argument-count errors into usage errors (exit 2), in c
// and its subcommands (export chaos-mesh).
func wrapArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
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

// Run executes chaosloop with args and returns the exit status.
func Run(ctx context.Context, streams cli.Streams, args []string) int {
	return Execute(ctx, NewCommand(streams), streams, args)
}

// Execute runs cmd (the root command, or one a test extended) with args and
// returns the exit status: the command's, 1 with a bug report for a panic,
// 128+n when signal n interrupted it.
func Execute(ctx context.Context, cmd *cobra.Command, streams cli.Streams, args []string) (code int) {
	defer func() {
		if v := recover(); v != nil {
			code = reportPanic(streams.Err, &cli.PanicError{Value: v, Stack: debug.Stack()}, args)
		}
	}()
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return cli.ExitOK
	}
	var pe *cli.PanicError
	if errors.As(err, &pe) {
		return reportPanic(streams.Err, pe, args)
	}
	var ee *cli.ExitError
	isExit := errors.As(err, &ee)
	if !isExit || ee.Err != nil {
		fmt.Fprintln(streams.Err, "chaosloop:", err)
	}
	if sig := cli.SignalOf(ctx); sig != nil {
		return sig.ExitCode()
	}
	if !isExit && isUsage(err) {
		return cli.ExitInvalid
	}
	return cli.CodeOf(err)
}

// reportPanic tells the user chaosloop itself failed (exit 1, never the 2 of
// an invalid file) and where the stack is, for a bug report.
func reportPanic(w io.Writer, pe *cli.PanicError, args []string) int {
	crash.Report{Summary: pe.Error(), Version: versioncmd.Read().Short(), Args: args, Details: string(pe.Stack)}.Write(w)
	return cli.ExitFail
}

// isUsage recognises cobra's own usage errors (unknown command).
func isUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}
