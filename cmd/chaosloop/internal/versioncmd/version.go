// Package versioncmd implements `chaosloop version`: what this binary is
// (module version, VCS commit, Go version) and the engine versions its
// local lab is pinned to, for bug reports and for comparing two runs.
package versioncmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// Info is the JSON (and YAML) form of `chaosloop version`.
type Info struct {
	Version    string               `json:"version"` // module version, "(devel)" for a build from a work tree
	Commit     string               `json:"commit,omitempty"`
	CommitTime string               `json:"commitTime,omitempty"`
	Modified   bool                 `json:"modified"` // built from a work tree with uncommitted changes
	GoVersion  string               `json:"goVersion"`
	Platform   string               `json:"platform"`
	Engines    []local.PinnedEngine `json:"engines"`
}

// Read returns the running binary's Info.
func Read() Info {
	info := Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Engines: local.Pinned()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.CommitTime = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Short is the one line `chaosloop --version` prints after the name.
func (i Info) Short() string {
	s := i.Version
	if i.Commit != "" {
		s += ", commit " + shortCommit(i.Commit)
		if i.Modified {
			s += " (modified)"
		}
	}
	return s + ", " + i.GoVersion + " " + i.Platform
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// NewCommand returns the version command.
func NewCommand(env *cli.Env) *cobra.Command {
	var out cli.Output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print chaosloop's version, commit and Go version, and the engine versions the lab is pinned to",
		Long: `Version prints this binary's module version, the commit it was built from
(and whether the work tree had uncommitted changes), the Go version, and the
versions the local lab's engines are pinned to (Debian packages, Maven
artefacts, Go modules). Include it in bug reports. -o wide lists every pinned
package.`,
		Example: `  chaosloop version
  chaosloop version -o json | jq -r .commit
  chaosloop version -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.Check(); err != nil {
				return err
			}
			info := Read()
			if out.Structured() {
				return out.Encode(env.Out, info)
			}
			return writeText(env.Out, info, out.Format == cli.FormatWide)
		},
	}
	out.Add(cmd, cli.FormatText, cli.FormatWide, cli.FormatJSON, cli.FormatYAML)
	return cmd
}

func writeText(w io.Writer, i Info, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "chaosloop:\t%s\n", i.Version)
	if i.Commit != "" {
		c := i.Commit
		if i.Modified {
			c += " (modified)"
		}
		if i.CommitTime != "" {
			c += " " + i.CommitTime
		}
		fmt.Fprintf(tw, "commit:\t%s\n", c)
	}
	fmt.Fprintf(tw, "go:\t%s %s\n", i.GoVersion, i.Platform)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nengines of the local lab (pinned):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "ENGINE\tKINDS\tSOURCE"
	if wide {
		header += "\tPINS"
	}
	fmt.Fprintln(tw, header)
	for _, e := range i.Engines {
		line := e.Engine + "\t" + e.Kinds + "\t" + e.Source
		if wide {
			line += "\t" + strings.Join(e.Pins, " ")
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
