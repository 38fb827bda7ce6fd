package cli

import (
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Output formats for -o, as kubectl names them.
const (
	FormatText = "text" // the default: what a person reads
	FormatWide = "wide" // text with more columns
	FormatJSON = "json"
	FormatYAML = "yaml"
)

// Output is the -o/--output flag of a command that prints something.
type Output struct {
	Format  string
	allowed []string
}

// Add registers -o/--output (and --format, its older name, hidden) with
// the formats the command supports, and their completion.
func (o *Output) Add(cmd *cobra.Command, allowed ...string) {
	o.AddDefault(cmd, FormatText, allowed...)
}

// AddDefault is Add for a command whose default format is not text (an
// export, whose output is for programs).
func (o *Output) AddDefault(cmd *cobra.Command, def string, allowed ...string) {
	o.allowed = allowed
	help := "output format: " + strings.Join(allowed, ", ")
	cmd.Flags().StringVarP(&o.Format, "output", "o", def, help)
	cmd.Flags().StringVar(&o.Format, "format", def, "the same as --output")
	_ = cmd.Flags().MarkHidden("format")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// Check refuses a format the command does not support (exit 2).
func (o *Output) Check() error {
	if o.Format == "" {
		o.Format = FormatText
	}
	if !slices.Contains(o.allowed, o.Format) {
		return Usagef("-o must be one of %s, not %q", strings.Join(o.allowed, ", "), o.Format)
	}
	return nil
}

// Structured reports whether the output is for programs (json or yaml).
func (o *Output) Structured() bool { return o.Format == FormatJSON || o.Format == FormatYAML }

// Encode writes v as indented JSON, or with -o yaml as YAML with the same
// keys (the JSON field names, as kubectl does).
func (o *Output) Encode(w io.Writer, v any) error {
	if o.Format == FormatYAML {
		return EncodeYAML(w, v)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// EncodeYAML writes v's JSON form as block-style YAML: one set of field
// names (the JSON tags) for both formats, in the same order.
func EncodeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return JSONToYAML(w, b)
}

// JSONToYAML converts one JSON document to block-style YAML.
func JSONToYAML(w io.Writer, js []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(js, &n); err != nil {
		return err
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// yaml11Bools are plain words a YAML 1.1 reader (PyYAML, many CI tools)
// takes for booleans; yaml.v3 writes them plain, being YAML 1.2.
var yaml11Bools = regexp.MustCompile(`^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$`)

// blockStyle drops the flow style JSON parses into; strings stay strings
// (the encoder quotes those that would read as another type in YAML 1.2,
// and yaml11Bools are quoted for YAML 1.1 readers).
func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style &^= yaml.DoubleQuotedStyle
		if yaml11Bools.MatchString(n.Value) {
			n.Style |= yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
