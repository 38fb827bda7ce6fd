package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/scenarios"
)

// LabFlags are the flags of the commands that work on a lab.
type LabFlags struct {
	On    string
	Root  string
	Cache string
}

// Add registers the flags on cmd.
func (f *LabFlags) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.On, "on", "local", "where the lab runs: local (network namespaces on this machine); kind and k3s are not available yet")
	cmd.Flags().StringVar(&f.Root, "state-dir", local.DefaultRoot, "directory holding the labs' state")
	cmd.Flags().StringVar(&f.Cache, "cache-dir", local.DefaultCache, "directory holding downloaded and built engines")
}

// Options checks the provider and returns the local lab's options.
func (f *LabFlags) Options(env *Env) (local.Options, error) {
	switch f.On {
	case "local":
	case "kind", "k3s":
		return local.Options{}, Usagef("--on %s is not available yet: kind needs a container engine and the kindest/node image, and k3s real nodes, neither of which this build can drive; use --on local", f.On)
	default:
		return local.Options{}, Usagef("--on must be local, kind or k3s, not %q", f.On)
	}
	if err := local.Supported(); err != nil {
		return local.Options{}, err
	}
	return local.Options{Root: f.Root, Cache: f.Cache, Log: env.Log}, nil
}

// LoadScenario parses and validates a scenario file, printing every problem
// on stderr and returning exit status 2 when it is invalid.
func LoadScenario(env *Env, file string) (*scenarios.Scenario, error) {
	sc, err := scenarios.Parse(file)
	if err != nil {
		var serrs scenarios.Errors
		if errors.As(err, &serrs) {
			for _, e := range serrs {
				fmt.Fprintln(env.Err, e.Error())
			}
			return nil, Exit(ExitInvalid)
		}
		return nil, Invalid(err)
	}
	return sc, nil
}

// LabName picks the lab a command works on: the argument, or the only lab.
func LabName(opts local.Options, args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	names, err := local.List(opts)
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no lab is up (state dir %s)", opts.Root)
	case 1:
		return names[0], nil
	}
	return "", Usagef("several labs are up (%v): name one", names)
}
