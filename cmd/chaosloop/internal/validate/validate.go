// Package validate implements `chaosloop validate FILE`: structural errors
// (exit 2) and the seed document's deployment lint (exit 1 on an error
// finding).
package validate

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
	"github.com/chaosloop/chaosloop/topology/lint"
)

// Result is the JSON form of a validation.
type Result struct {
	File     string             `json:"file"`
	Valid    bool               `json:"valid"`
	Errors   []*scenarios.Error `json:"errors"`
	Findings []lint.Finding     `json:"findings"`
	Summary  Summary            `json:"summary"`
}

// Summary counts findings by severity.
type Summary struct {
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Info     int `json:"info"`
}

// NewCommand returns the validate command.
func NewCommand(env *cli.Env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a scenario file and lint it against the seed's deployment recommendations",
		Long: `Validate decodes a scenario file strictly and reports every structural problem
with file:line:column (exit 2). A valid file is then linted against the Mojaloop
on-premises deployment recommendations: pool and node sizes, replica counts,
Kafka replication, anti-affinity across racks, power feeds and switches, pools
that must not be merged, and sites holding a quorum majority.

Exit status: 0 when no finding is an error, 1 when one is, 2 for an invalid file.`,
		Example: `  chaosloop validate scenarios/three-site.yaml
  chaosloop validate --format json scenarios/reference.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckFormat(format, "text", "json"); err != nil {
				return err
			}
			return run(env, args[0], format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "text", "output format: text or json")
	return cmd
}

func run(env *cli.Env, file, format string) error {
	res := Result{File: file, Errors: []*scenarios.Error{}, Findings: []lint.Finding{}}
	sc, err := scenarios.Parse(file)
	var serrs scenarios.Errors
	switch {
	case errors.As(err, &serrs):
		res.Errors = serrs
	case err != nil:
		return cli.Invalid(err)
	}
	if sc != nil {
		t, err := topology.Build(sc)
		if err != nil {
			return err
		}
		res.Findings = lint.Check(t)
		res.Valid = true
	}
	for _, f := range res.Findings {
		switch f.Severity {
		case lint.Error:
			res.Summary.Errors++
		case lint.Warning:
			res.Summary.Warnings++
		default:
			res.Summary.Info++
		}
	}
	if format == "json" {
		enc := json.NewEncoder(env.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		for _, e := range res.Errors {
			fmt.Fprintln(env.Err, e.Error())
		}
		for _, f := range res.Findings {
			fmt.Fprintln(env.Out, f.String())
		}
		if res.Valid {
			fmt.Fprintf(env.Out, "%s: valid; %d error(s), %d warning(s), %d info\n", file, res.Summary.Errors, res.Summary.Warnings, res.Summary.Info)
		} else {
			fmt.Fprintf(env.Err, "%s: invalid (%d problem(s))\n", file, len(res.Errors))
		}
	}
	switch {
	case !res.Valid:
		return cli.Exit(cli.ExitInvalid)
	case res.Summary.Errors > 0:
		return cli.Exit(cli.ExitFail)
	}
	return nil
}
