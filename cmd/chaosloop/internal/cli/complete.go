package cli

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
)

// CompleteScenarioFiles completes scenario files (and directories on the
// way to them).
func CompleteScenarioFiles(toComplete string) ([]string, cobra.ShellCompDirective) {
	matches, _ := filepath.Glob(toComplete + "*")
	var out []string
	dirs := false
	for _, m := range matches {
		st, err := os.Stat(m)
		switch {
		case err != nil:
		case st.IsDir():
			out = append(out, m+string(filepath.Separator))
			dirs = true
		case isScenarioFile(m):
			out = append(out, m)
		}
	}
	d := cobra.ShellCompDirectiveNoFileComp
	if dirs {
		d |= cobra.ShellCompDirectiveNoSpace
	}
	return out, d
}

func isScenarioFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// CompleteLabs completes a LAB argument: the labs in the state directory
// (lf's --state-dir, already parsed when completing), then scenario files.
func CompleteLabs(lf *LabFlags) func(string) ([]string, cobra.ShellCompDirective) {
	return func(toComplete string) ([]string, cobra.ShellCompDirective) {
		var out []string
		if names, err := local.List(local.Options{Root: lf.root()}); err == nil {
			for _, n := range names {
				if strings.HasPrefix(n, toComplete) {
					out = append(out, n)
				}
			}
		}
		files, d := CompleteScenarioFiles(toComplete)
		return append(out, files...), d
	}
}

// FirstArg completes only the first positional argument with fn.
func FirstArg(fn func(string) ([]string, cobra.ShellCompDirective)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return fn(toComplete)
	}
}

// AnyArg completes every positional argument with fn (validate's files).
func AnyArg(fn func(string) ([]string, cobra.ShellCompDirective)) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return fn(toComplete)
	}
}

// CompleteDirs completes directories only (run directories).
func CompleteDirs(string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}
