package scenarios

import (
	"io"
	"os"
)

// ReadFile reads and decodes a scenario file. It does not apply defaults or
// validate; see Parse for the usual pipeline.
func ReadFile(path string) (*Scenario, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data)
}

// readFile reads at most one byte more than MaxFileBytes, so that Decode
// can refuse a longer file without it ever being read whole.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, readError{err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, readError{err}
	}
	return data, nil
}

// readError is a file's read error, printable as it is: the path in it is
// escaped like any other input (see escapeControls).
type readError struct{ err error }

func (e readError) Error() string { return escapeControls(e.err.Error()) }
func (e readError) Unwrap() error { return e.err }

// Parse reads a scenario file, applies defaults and validates it: the usual
// pipeline for commands. A returned error is an Errors list unless the file
// could not be read.
func Parse(path string) (*Scenario, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseData(path, data)
}

// parseData decodes, applies defaults and validates: decoding and
// validation problems are reported together, and validation says nothing
// of fields that failed to decode (see failedAt).
func parseData(path string, data []byte) (*Scenario, error) {
	s, errs := decode(path, data)
	if s == nil {
		return nil, errs.err()
	}
	d := s.WithDefaults()
	errs.merge(d.validate())
	if err := errs.err(); err != nil {
		return nil, err
	}
	return d, nil
}
