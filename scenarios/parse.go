package scenarios

import "context"

// ParseBytes is Parse for a scenario already read (standard input, or a
// file read under a size limit); file names it in error messages. It stops
// between stages once ctx is done, so that Ctrl-C ends a command reading a
// large file.
func ParseBytes(ctx context.Context, file string, data []byte) (*Scenario, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := parseData(file, data)
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	return s, err
}
