package schema

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemaDescribesFailoverAndNames(t *testing.T) {
	b, err := json.Marshal(Generate())
	require.NoError(t, err)
	var s struct {
		Properties map[string]struct {
			Pattern   string `json:"pattern"`
			MaxLength int    `json:"maxLength"`
		} `json:"properties"`
		Defs map[string]struct {
			OneOf []struct {
				Type                 string          `json:"type"`
				AdditionalProperties json.RawMessage `json:"additionalProperties"`
			} `json:"oneOf"`
		} `json:"$defs"`
	}
	require.NoError(t, json.Unmarshal(b, &s))
	require.Equal(t, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", s.Properties["name"].Pattern)
	require.Equal(t, 63, s.Properties["name"].MaxLength)
	f := s.Defs["Failover"].OneOf
	require.Len(t, f, 2, "a duration or a map of durations")
	require.Equal(t, "string", f[0].Type)
	require.Equal(t, "object", f[1].Type)
	require.Contains(t, string(f[1].AdditionalProperties), "Go duration")
}
