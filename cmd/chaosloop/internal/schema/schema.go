// Package schema implements `chaosloop schema`: a JSON Schema of the
// scenario format, for editors (e.g. yaml-language-server).
package schema

import (
	"encoding/json"

	"github.com/invopop/jsonschema"
	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Generate returns the scenario format's JSON Schema.
func Generate() *jsonschema.Schema {
	r := &jsonschema.Reflector{DoNotReference: false, ExpandedStruct: true}
	s := r.Reflect(&scenarios.Scenario{})
	s.ID = "https://chaosloop.dev/schemas/scenario.json"
	s.Title = "chaosloop scenario"
	s.Description = "A deployment topology across sites and the services placed on it (spec: shared/spec/scenario.md)."
	return s
}

// NewCommand returns the schema command.
func NewCommand(env *cli.Env) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema of the scenario file format",
		Long: `Schema prints a JSON Schema (draft 2020-12) of the scenario format, so that
editors can validate and complete scenario files. With yaml-language-server,
start a scenario file with:

  # yaml-language-server: $schema=./scenario.schema.json`,
		Example: `  chaosloop schema > scenario.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			enc := json.NewEncoder(env.Out)
			enc.SetIndent("", "  ")
			return enc.Encode(Generate())
		},
	}
}
