// Package schema implements `chaosloop schema`: a JSON Schema of the
// scenario format, for editors (e.g. yaml-language-server).
package schema

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
)

// NewCommand returns the schema command.
func NewCommand(env *cli.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema of the scenario file format",
		Long: `Schema prints a JSON Schema (draft 2020-12) of the scenario format, so that
editors can validate and complete scenario files, with every field's meaning,
default and range as hover help. It is generated from the rules validate
checks; what it cannot express (references between fields, unique names,
placement) only validate reports. With yaml-language-server, start a scenario
file with:

  # yaml-language-server: $schema=./scenario.schema.json`,
		Example: `  chaosloop schema > scenario.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			enc := json.NewEncoder(env.Out)
			enc.SetIndent("", "  ")
			return enc.Encode(scenarios.JSONSchema())
		},
	}
}
