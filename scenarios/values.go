package scenarios

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/invopop/jsonschema"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Duration is a Go duration written as a string ("90s", "3m").
type Duration struct{ time.Duration }

// D returns the duration, zero for nil.
func (d *Duration) D() time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

// ParseDuration parses a Go duration; negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("invalid duration %q (want a Go duration such as 90s or 3m)", clip(s))
	}
	if d < 0 {
		return Duration{}, fmt.Errorf("invalid duration %q: must not be negative", clip(s))
	}
	return Duration{d}, nil
}

func (d Duration) String() string { return d.Duration.String() }

// MarshalText writes the Go duration form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// JSONSchema describes a duration for editors.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
		Description: "a Go duration such as 90s, 1m30s or 2ms",
	}
}

// Quantity is a Kubernetes resource quantity ("32Gi", "500G").
type Quantity struct {
	resource.Quantity
	raw string
}

// ParseQuantity parses a Kubernetes quantity; negative sizes are refused.
func ParseQuantity(s string) (Quantity, error) {
	if costlyQuantity(s) {
		return Quantity{}, fmt.Errorf("invalid size %q (want a Kubernetes quantity such as 32Gi or 500G)", clip(s))
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return Quantity{}, fmt.Errorf("invalid size %q (want a Kubernetes quantity such as 32Gi or 500G)", clip(s))
	}
	if q.Sign() < 0 {
		return Quantity{}, fmt.Errorf("invalid size %q: must not be negative", clip(s))
	}
	return Quantity{Quantity: q, raw: s}, nil
}

// Bytes returns the quantity as a number of bytes (units).
func (q *Quantity) Bytes() int64 {
	if q == nil {
		return 0
	}
	return q.Value()
}

func (q Quantity) String() string {
	if q.raw != "" {
		return q.raw
	}
	return q.Quantity.String()
}

// MarshalText keeps the form the user wrote.
func (q Quantity) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText parses a Kubernetes quantity.
func (q *Quantity) UnmarshalText(b []byte) error {
	v, err := ParseQuantity(string(b))
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// JSONSchema describes a quantity for editors.
func (Quantity) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     `^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$`,
		Description: "a Kubernetes quantity such as 32Gi or 500G",
	}
}

// MarshalJSON shadows resource.Quantity's, keeping the form the user wrote.
func (q Quantity) MarshalJSON() ([]byte, error) { return json.Marshal(q.String()) }

// UnmarshalJSON shadows resource.Quantity's.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return q.UnmarshalText([]byte(s))
}
