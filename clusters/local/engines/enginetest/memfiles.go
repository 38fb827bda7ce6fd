package enginetest

import (
	"context"
	"os"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
)

// MemFiles stands for the members' nodes' files (engines.Files), keyed
// "NODE:PATH", to unit-test the orchestration of an engine on a real
// cluster's nodes.
type MemFiles map[string]string

var _ engines.Files = MemFiles{}

func (f MemFiles) MkdirAll(context.Context, engines.Member, string, os.FileMode) error { return nil }

func (f MemFiles) Exists(_ context.Context, m engines.Member, p string) (bool, error) {
	_, ok := f[m.Node+":"+p]
	return ok, nil
}

func (f MemFiles) WriteFile(_ context.Context, m engines.Member, p string, b []byte, _ os.FileMode) error {
	f[m.Node+":"+p] = string(b)
	return nil
}

func (f MemFiles) ReadFile(_ context.Context, m engines.Member, p string) ([]byte, error) {
	b, ok := f[m.Node+":"+p]
	if !ok {
		return nil, os.ErrNotExist
	}
	return []byte(b), nil
}
