// Package export implements `chaosloop export chaos-mesh FILE` (the
// scenario's faults as a Chaos Mesh Workflow) and `chaosloop export
// kind-config FILE` (the kind cluster configuration of the scenario, as
// the kind backend lays it out).
package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/chaosmesh"
	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
)

// NewCommand returns the export command and its subcommands.
func NewCommand(env *cli.Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a scenario in another tool's terms: a Chaos Mesh workflow, a kind cluster configuration",
		Long: `Export writes what a scenario describes for tools other than chaosloop:
its faults as a Chaos Mesh Workflow (chaos-mesh FILE), its cluster as a kind
configuration (kind-config FILE). Both print YAML (-o json: JSON) on
standard output, or into --out FILE.`,
		Example: `  chaosloop export chaos-mesh scenarios/quickstart.yaml | kubectl apply -f -
  chaosloop export kind-config scenarios/kind-quickstart.yaml --out kind.yaml`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newChaosMesh(env), newKindConfig(env))
	return cmd
}

// flags are what both subcommands take.
type flags struct {
	out  cli.Output
	in   cli.Inputs
	file string
}

func (f *flags) add(cmd *cobra.Command) {
	f.out.AddDefault(cmd, cli.FormatYAML, cli.FormatYAML, cli.FormatJSON)
	f.in.Add(cmd)
	cmd.Flags().StringVar(&f.file, "out", "", "write into this file instead of standard output")
	_ = cmd.MarkFlagFilename("out", "yaml", "yml", "json")
}

// scenarioFile checks the flags and returns the one scenario file named.
func (f *flags) scenarioFile(args []string) (string, error) {
	if err := f.out.Check(); err != nil {
		return "", err
	}
	files, err := f.in.Names(args, 1)
	if err != nil {
		return "", err
	}
	return files[0], nil
}

func newChaosMesh(env *cli.Env) *cobra.Command {
	var (
		f  flags
		ns string
	)
	cmd := &cobra.Command{
		Use:   "chaos-mesh FILE",
		Short: "Write the scenario's faults as a Chaos Mesh Workflow",
		Long: `Chaos-mesh writes the scenario's faults as one Chaos Mesh Workflow
(chaos-mesh.org/v1alpha1, Chaos Mesh 2.x) named after the scenario: each fault
a NetworkChaos or PodChaos template, timed by Suspend templates and deadlines,
overlapping faults in parallel branches. The workflow's time zero is the end
of the scenario's warmup.

Chaos Mesh acts on pods, so most faults are approximations: power-off and
destroy fail every pod on the nodes that lose power, isolate partitions
their pods, pause cuts the member's pods off instead of freezing them. Each
approximation is annotated on the workflow (chaosloop.io/approximation.fN)
and listed on stderr; a fault that would inject nothing is left out, with a
warning. Pods are selected as chaosloop's kind backend labels them
(chaosloop.io/service, chaosloop.io/member) in --namespace. The full
mapping is in docs/chaos-mesh-export.md.

Exit status: 0 written; 1 chaosloop failed (or no fault has a Chaos Mesh
form); 2 invalid file or usage, or a scenario without faults.`,
		Example: `  chaosloop export chaos-mesh scenarios/quickstart.yaml > quickstart-workflow.yaml
  chaosloop export chaos-mesh scenarios/quickstart.yaml --namespace mojaloop | kubectl apply -f -
  chaosloop export chaos-mesh scenarios/quickstart.yaml -o json --out workflow.json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := f.scenarioFile(args)
			if err != nil {
				return err
			}
			return cli.Interruptible(cmd.Context(), func() error { return runChaosMesh(cmd.Context(), env, &f, file, ns) })
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&ns, "namespace", "n", chaosmesh.DefaultNamespace, "namespace of the Workflow and of the pods it selects")
	return cmd
}

func runChaosMesh(ctx context.Context, env *cli.Env, f *flags, file, ns string) error {
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	ex, err := chaosmesh.Build(sc, chaosmesh.Options{Namespace: ns})
	if errors.Is(err, chaosmesh.ErrNoFaults) {
		return cli.Invalid(err)
	}
	if err != nil {
		return err
	}
	warn(env.Err, "approximations (what Chaos Mesh does instead of what chaosloop would)", ex.Approximations)
	warn(env.Err, "faults left out (they inject nothing)", ex.Skipped)
	head := fmt.Sprintf("Chaos Mesh Workflow of scenario %s, written by 'chaosloop export chaos-mesh'.\n"+
		"Time zero is the end of the scenario's warmup. The annotations chaosloop.io/fault.fN\n"+
		"and chaosloop.io/approximation.fN say what chaosloop would do for fault N and how\n"+
		"templates fN-* differ from it (docs/chaos-mesh-export.md).", sc.Name)
	return write(env, f, head, ex.Manifest())
}

func newKindConfig(env *cli.Env) *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "kind-config FILE",
		Short: "Write the kind cluster configuration of the scenario",
		Long: `Kind-config writes the kind configuration (kind.x-k8s.io/v1alpha4) of the
cluster chaosloop's kind backend stands the scenario up as: one node per
scenario node in the backend's order, named after it (kubeadm patches), the
K3S-CONTROL-PLANE nodes (else the first etcd service's, else the first node)
as control planes, each labelled with its site (topology.kubernetes.io/region),
SITE-RACK (zone) and chaosloop's site, rack, feed, switch and pool labels,
and the backend's pod and Service ranges. 'kind create cluster --config'
takes it as it is.

What the backend adds beyond a plain kind configuration — the lab network
the nodes are attached to, its own CNI, its node image — is listed in the
YAML's header comment. Like the backend, it refuses a scenario of more than
16 nodes (one pod /24 each).

Exit status: 0 written; 1 chaosloop failed; 2 invalid file or usage, or a
scenario the kind backend cannot lay out.`,
		Example: `  chaosloop export kind-config scenarios/kind-quickstart.yaml > kind.yaml
  kind create cluster --config kind.yaml`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cli.FirstArg(cli.CompleteScenarioFiles),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := f.scenarioFile(args)
			if err != nil {
				return err
			}
			return cli.Interruptible(cmd.Context(), func() error { return runKindConfig(cmd.Context(), env, &f, file) })
		},
	}
	f.add(cmd)
	return cmd
}

func runKindConfig(ctx context.Context, env *cli.Env, f *flags, file string) error {
	sc, err := cli.LoadScenario(ctx, env, file)
	if err != nil {
		return err
	}
	plan, err := kindlab.NewPlan(sc)
	if err != nil {
		// a valid scenario the kind backend refuses: too many nodes, too
		// long a name for kind's node names
		return cli.Invalid(err)
	}
	return write(env, f, kindlab.PlainConfigNote, plan.PlainConfig())
}

// warn lists items on w under a title; nothing when there are none.
func warn(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "chaosloop: warning: %s:\n", title)
	for _, it := range items {
		fmt.Fprintf(w, "  %s\n", it)
	}
}

// write encodes v as YAML, with head as its comment, or as JSON (which
// has no comments), on standard output or into --out.
func write(env *cli.Env, f *flags, head string, v any) error {
	var buf bytes.Buffer
	if f.out.Format == cli.FormatJSON {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		for line := range strings.SplitSeq(head, "\n") {
			buf.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		if err := cli.EncodeYAML(&buf, v); err != nil {
			return err
		}
	}
	if f.file == "" {
		_, err := env.Out.Write(buf.Bytes())
		return err
	}
	// written whole or not at all: a half-written manifest applied later
	// would inject half the faults
	tmp := f.file + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.file)
}
