package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/scenarios"
)

// StdinName names a scenario read from standard input in messages.
const StdinName = "<stdin>"

// maxInput bounds what is read of one scenario before decoding, so that
// `validate - < /dev/zero` fails cleanly instead of filling the memory;
// the decoder has its own, smaller limits.
const maxInput = 64 << 20

// Inputs are a command's scenario files: FILE arguments and -f/--filename,
// as kubectl takes them; "-" reads standard input.
type Inputs struct {
	files []string
}

// Add registers -f/--filename and its completion (scenario files).
func (in *Inputs) Add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&in.files, "filename", "f", nil, "scenario file; - reads standard input")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
}

// Names returns the FILE arguments then the -f files: at least one, at most
// max (0: any number), standard input at most once.
func (in *Inputs) Names(args []string, max int) ([]string, error) {
	names := append(slices.Clone(args), in.files...)
	switch {
	case len(names) == 0:
		return nil, Usagef("no scenario file: name one (FILE, -f FILE, or - for standard input)")
	case max > 0 && len(names) > max:
		return nil, Usagef("takes %d scenario file(s), not %d: %v", max, len(names), names)
	case countOf(names, "-") > 1:
		return nil, Usagef("standard input (-) can be read only once")
	}
	return names, nil
}

// ReadInput reads the scenario named name ("-" for env.In) and returns the
// name to use in messages with its content.
func ReadInput(env *Env, name string) (string, []byte, error) {
	var r io.Reader
	display := name
	if name == "-" {
		r, display = env.In, StdinName
	} else {
		f, err := os.Open(name)
		if err != nil {
			return name, nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return name, nil, fmt.Errorf("%s is a directory, not a scenario file", name)
		}
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return display, nil, fmt.Errorf("%s: %w", display, err)
	}
	if len(data) > maxInput {
		return display, nil, fmt.Errorf("%s: larger than %d MiB: not a scenario file", display, maxInput>>20)
	}
	return display, data, nil
}

// ParseInput reads and parses the scenario named name ("-" for standard
// input): defaults applied, validated. Its error is an Errors list unless
// the input could not be read.
func ParseInput(ctx context.Context, env *Env, name string) (string, *scenarios.Scenario, error) {
	display, data, err := ReadInput(env, name)
	if err != nil {
		return display, nil, err
	}
	sc, err := scenarios.ParseBytes(ctx, display, data)
	return display, sc, err
}

// LoadScenario parses and validates a scenario ("-" for standard input),
// printing every problem on stderr and returning exit status 2 when it is
// invalid.
func LoadScenario(ctx context.Context, env *Env, name string) (*scenarios.Scenario, error) {
	sc, _, err := LoadScenarioSource(ctx, env, name)
	return sc, err
}

func countOf(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}
