package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/clusters/k3s/bmc"
	"github.com/chaosloop/chaosloop/clusters/kind"
	"github.com/chaosloop/chaosloop/clusters/local"
	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// LabFlags are the flags of the commands that work on a lab.
type LabFlags struct {
	On    string
	Root  string
	Cache string
	// BMC is a BMC inventory that powers kind's node containers (--on kind).
	BMC string
}

// Add registers the flags on cmd.
func (f *LabFlags) Add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.On, "on", "local", "where the lab runs: local (network namespaces on this machine) or kind (a kind cluster on this machine, its nodes on the same network); k3s (an existing cluster) works with validate, label, plan, up (the node agent only), status, down, fault, heal, and run in attach mode (the scenario's services the adopter's own, observed, no load) so far")
	cmd.Flags().StringVar(&f.Root, "state-dir", "", fmt.Sprintf("directory holding the labs' state (default %s; with --on kind %s)", local.DefaultRoot, kind.DefaultRoot))
	cmd.Flags().StringVar(&f.Cache, "cache-dir", local.DefaultCache, "directory holding downloaded and built engines and images")
	cmd.Flags().StringVar(&f.BMC, "bmc", "", "with --on kind: a BMC inventory `FILE` (Redfish or IPMI, as for a real cluster) whose BMCs power the nodes it lists: power faults go through them instead of docker (BMC emulators that power kind's node containers); with --on k3s: the cluster nodes' BMCs, for power faults")
	_ = cmd.MarkFlagFilename("bmc", "yaml", "yml")
	_ = cmd.RegisterFlagCompletionFunc("on", cobra.FixedCompletions([]string{"local", "kind", "k3s"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagDirname("state-dir")
	_ = cmd.MarkFlagDirname("cache-dir")
}

// Options checks the provider and returns the local lab's options (also
// the base of the kind backend's).
func (f *LabFlags) Options(env *Env) (local.Options, error) {
	switch f.On {
	case "local", "kind":
	case "k3s":
		return local.Options{}, Usagef("--on k3s is not available for this command yet: only validate, label, plan, up (the node agent only), status, down, fault, heal and run (attach mode) work on a k3s cluster so far; use --on local or --on kind")
	default:
		return local.Options{}, Usagef("--on must be local, kind or k3s, not %q", f.On)
	}
	if err := local.Supported(); err != nil {
		return local.Options{}, err
	}
	return local.Options{Root: f.root(), Cache: f.Cache, Log: env.Log}, nil
}

// root is the state directory of --on's labs: --state-dir, else the
// backend's own.
func (f *LabFlags) root() string {
	switch {
	case f.Root != "":
		return f.Root
	case f.On == "kind":
		return kind.DefaultRoot
	}
	return local.DefaultRoot
}

// Provider returns the backend --on names, configured from the flags: the
// one place a backend is chosen. seed drives the random choices of its
// faults; progress, when set, is told what Up does.
func (f *LabFlags) Provider(env *Env, seed uint64, progress func(lab.Progress)) (lab.Provider, error) {
	opts, err := f.Options(env)
	if err != nil {
		return nil, err
	}
	opts.Seed, opts.Progress = seed, progress
	if f.On == "kind" {
		// every problem of the inventory at once, exit 2, as for a scenario
		power, err := LoadBMC(context.Background(), env, f.BMC)
		if err != nil {
			return nil, err
		}
		return KindProvider(opts, power)
	}
	if f.BMC != "" {
		return nil, Usagef("--bmc works with --on kind (its node containers' power); a local lab's nodes have no BMC")
	}
	return local.NewProvider(opts), nil
}

// KindProvider is the kind backend with the local lab's options; a
// dockerd it starts uses this binary as its OCI runtime wrapper.
func KindProvider(opts local.Options, power *bmc.Inventory) (*kind.Provider, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return kind.NewProvider(kind.Options{Root: opts.Root, Cache: opts.Cache, Log: opts.Log, Progress: opts.Progress,
		Seed: opts.Seed, Runtime: []string{exe, OCIRuntimeArg}, Power: power}), nil
}

// OCIRuntimeArg is the hidden command that makes chaosloop the Docker
// daemon's OCI runtime wrapper (package ociruntime).
const OCIRuntimeArg = "oci-runtime"

// LoadScenarioSource is LoadScenario that also returns the bytes read (run
// keeps them beside its evidence).
func LoadScenarioSource(ctx context.Context, env *Env, name string) (*scenarios.Scenario, []byte, error) {
	display, data, err := ReadInput(env, name)
	if errors.Is(err, fs.ErrNotExist) && labName.MatchString(name) {
		return nil, nil, Usagef("no scenario file %q: this command needs the scenario FILE (a lab's NAME is enough only for status, down, fault and heal)", name)
	}
	if err != nil {
		return nil, nil, Invalid(err)
	}
	sc, err := scenarios.ParseBytes(ctx, display, data)
	if err != nil {
		return nil, nil, reportInvalid(ctx, env, err)
	}
	return sc, data, nil
}

// labName is the shape of a lab's name: the scenario's name, a DNS-1123
// label. Anything else a lab command is given is a scenario file.
var labName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ResolveLab is the one way every lab command names its lab. ref is a lab
// NAME, or the scenario FILE the lab was stood up from (the lab's name is
// the scenario's name:), or "-" for that scenario on standard input; ""
// means the only lab that is up. A ref shaped like a name is a file only
// when no lab has that name and a file does.
func ResolveLab(ctx context.Context, env *Env, p lab.Provider, ref string) (string, error) {
	if ref == "" {
		return onlyLab(ctx, p)
	}
	if labName.MatchString(ref) {
		if !isFile(ref) {
			return ref, nil
		}
		names, err := p.List(ctx)
		if err != nil {
			return "", err
		}
		if slices.Contains(names, ref) {
			return ref, nil
		}
	}
	return labOfFile(env, ref)
}

func isFile(name string) bool {
	st, err := os.Stat(name)
	return err == nil && !st.IsDir()
}

// labOfFile reads the lab's name from a scenario file. The file need not
// be valid as a whole (a lab stood up from an older version of it must
// still come down), only its name.
func labOfFile(env *Env, file string) (string, error) {
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return "", Usagef("%q is neither a lab name nor a scenario file: it is a directory", file)
	}
	display, data, err := ReadInput(env, file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", Usagef("%q is neither a lab name nor a scenario file: %v", file, err)
		}
		return "", Invalid(err)
	}
	sc, _ := scenarios.Decode(display, data)
	if sc == nil || !labName.MatchString(sc.Name) {
		return "", Usagef("%s: no valid name: in the scenario, so no lab to name (run 'chaosloop validate %s')", display, file)
	}
	return sc.Name, nil
}

func onlyLab(ctx context.Context, p lab.Provider) (string, error) {
	names, err := p.List(ctx)
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no lab is up on the %s backend", p.Name())
	case 1:
		return names[0], nil
	}
	return "", Usagef("several labs are up (%s): name one (NAME or its scenario FILE)", strings.Join(names, ", "))
}

func reportInvalid(ctx context.Context, env *Env, err error) error {
	if ctx.Err() != nil {
		return Interrupted(ctx)
	}
	var serrs scenarios.Errors
	if errors.As(err, &serrs) {
		for _, e := range serrs {
			fmt.Fprintln(env.Err, e.Error())
		}
		return Exit(ExitInvalid)
	}
	return Invalid(err)
}

// LabRef is the lab a lab command works on, named as ResolveLab takes it:
// by its positional LAB argument, or by -f FILE as kubectl takes a file
// (--lab, the older flag of fault and heal, is kept hidden).
type LabRef struct {
	file, lab string
}

// Add registers -f/--filename and the hidden --lab on cmd.
func (r *LabRef) Add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&r.file, "filename", "f", "", "the lab's scenario file (instead of LAB; - reads standard input)")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.Flags().StringVar(&r.lab, "lab", "", "the lab: NAME or scenario FILE (the same as LAB)")
	_ = cmd.Flags().MarkHidden("lab")
}

// Resolve returns the lab's name from the positional LAB (arg, "" when
// absent) or the flags; naming it twice is a usage error.
func (r *LabRef) Resolve(ctx context.Context, env *Env, p lab.Provider, arg string) (string, error) {
	var refs []string
	for _, s := range []string{arg, r.file, r.lab} {
		if s != "" {
			refs = append(refs, s)
		}
	}
	if len(refs) > 1 {
		return "", Usagef("the lab is named twice (%s): give LAB or -f FILE", strings.Join(refs, ", "))
	}
	ref := ""
	if len(refs) == 1 {
		ref = refs[0]
	}
	return ResolveLab(ctx, env, p, ref)
}

// Named reports whether the lab was named by a flag.
func (r *LabRef) Named() bool { return r.file != "" || r.lab != "" }

// Arg returns args[i], or "" when there are fewer arguments.
func Arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// ScenarioName is the scenario a NAME or a scenario FILE ("-" for
// standard input) names, for the commands that act on what a scenario
// made on a cluster (down --on k3s): there is no lab list to look in.
func ScenarioName(env *Env, ref string) (string, error) {
	if labName.MatchString(ref) && !isFile(ref) {
		return ref, nil
	}
	return labOfFile(env, ref)
}
