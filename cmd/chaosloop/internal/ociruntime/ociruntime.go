// Package ociruntime implements the hidden `chaosloop oci-runtime RUNC-ARGS`:
// the OCI runtime a dockerd started by chaosloop uses by default. It drops
// the capabilities this machine's bounding set lacks from what a container
// asks for (kind's --privileged nodes ask for all of them), then execs runc.
package ociruntime

import (
	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/kind/docker"
)

// Use is the command's name, what dockerd is told to pass first.
const Use = "oci-runtime"

// NewCommand returns the hidden oci-runtime command. Its arguments are
// runc's, untouched: cobra parses none of them.
func NewCommand() *cobra.Command {
	return &cobra.Command{
		Use:                Use + " [runc arguments]",
		Short:              "Run runc without the capabilities this machine lacks (dockerd's runtime)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return docker.RunRuntime(args)
		},
	}
}
