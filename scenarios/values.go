package scenarios

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Names of the scenario, sites, racks, feeds, switches, nodes and services
// are DNS-1123 labels (they become host names, Kubernetes node names and
// label values); pool names have the same shape in upper case. The JSON
// Schema uses these very patterns.
const (
	LabelPattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	PoolPattern  = `^[A-Z0-9]([-A-Z0-9]*[A-Z0-9])?$`
	// SelectorPattern is an equality-based label selector: each key an
	// optional DNS subdomain prefix and a name, each value empty or a name
	// (Kubernetes' label syntax), pairs joined by commas.
	SelectorPattern = `^` + selectorPair + `(,` + selectorPair + `)*$`
)

var (
	labelName = regexp.MustCompile(LabelPattern)
	selector  = regexp.MustCompile(SelectorPattern)
	poolName  = regexp.MustCompile(PoolPattern)
)

// MaxNameLen is the longest name a DNS-1123 label allows.
const MaxNameLen = 63

// MaxSelectorLen bounds a label selector: a few labels of Kubernetes'
// longest keys and values.
const MaxSelectorLen = 1024

// validName reports whether s is a name of the format (a label or a pool).
func validName(f Format, s string) bool {
	re := labelName
	switch f {
	case FormatPool:
		re = poolName
	case FormatSelector:
		return len(s) <= MaxSelectorLen && selector.MatchString(s)
	}
	return len(s) <= MaxNameLen && re.MatchString(s)
}

// selectorPair is one key=value (or ==, !=) of a label selector.
const (
	labelValue   = `[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?`
	selectorKey  = `([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?` + labelValue
	selectorPair = selectorKey + `(=|==|!=)(` + labelValue + `)?`
)

// unit is a suffix of a duration or a size and what it multiplies by.
type unit struct {
	suffix string
	factor float64
}

// durationUnits are Go's (time.ParseDuration); "ms" before "m" and "s" so
// that an alternation tries the longer suffix first.
var durationUnits = []unit{
	{"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"μs", 1e3}, {"ms", 1e6},
	{"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
}

// sizeUnits are the Kubernetes quantity suffixes for whole bytes (no m,
// milli; no exponent form).
var sizeUnits = []unit{
	{"k", 1e3}, {"Ki", 1 << 10}, {"M", 1e6}, {"Mi", 1 << 20}, {"G", 1e9}, {"Gi", 1 << 30},
	{"T", 1e12}, {"Ti", 1 << 40}, {"P", 1e15}, {"Pi", 1 << 50}, {"E", 1e18}, {"Ei", 1 << 60},
}

// digits is a number pattern with at most k integer digits besides leading
// zeros (k = 0: any number of digits).
func digits(k int) string {
	if k == 0 {
		return `[0-9]+`
	}
	return fmt.Sprintf(`0*[0-9]{1,%d}`, k)
}

// maxDigits is how many integer digits a count of u up to max can need.
func maxDigits(max float64, u unit) int {
	if max == 0 {
		return 0
	}
	return len(strconv.FormatFloat(math.Max(1, math.Floor(max/u.factor)), 'f', 0, 64))
}

// DurationPattern is the syntax of a duration: Go's, without a sign. With
// max > 0 (nanoseconds) each number is limited to the digits max needs in
// its unit, which keeps absurd values out of an editor's schema too
// (99999999999h); the exact bound is checked by Validate.
func DurationPattern(max float64) string {
	parts := make([]string, len(durationUnits))
	for i, u := range durationUnits {
		parts[i] = fmt.Sprintf(`(%s(\.[0-9]*)?|\.[0-9]+)%s`, digits(maxDigits(max, u)), u.suffix)
	}
	return `^(0|(` + strings.Join(parts, "|") + `)+)$`
}

// SizePattern is the syntax of a size: a whole number of bytes, or a
// number with a Kubernetes suffix; max as for DurationPattern.
func SizePattern(max float64) string {
	parts := []string{digits(maxDigits(max, unit{factor: 1}))}
	for _, u := range sizeUnits {
		parts = append(parts, fmt.Sprintf(`(%s(\.[0-9]*)?|\.[0-9]+)%s`, digits(maxDigits(max, u)), u.suffix))
	}
	return `^(` + strings.Join(parts, "|") + `)$`
}

var (
	durationSyntax = regexp.MustCompile(DurationPattern(0))
	sizeSyntax     = regexp.MustCompile(SizePattern(0))
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

// ParseDuration parses a Go duration without a sign; negative durations are
// refused.
func ParseDuration(s string) (Duration, error) {
	if strings.HasPrefix(s, "-") {
		return Duration{}, fmt.Errorf("invalid duration %q: must not be negative", clip(s))
	}
	d, err := time.ParseDuration(s)
	if err != nil || !durationSyntax.MatchString(s) {
		return Duration{}, fmt.Errorf("invalid duration %q (want a Go duration such as 90s or 3m)", clip(s))
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

// decodeYAML reads a duration string; the number 0 is a duration too (as
// in Go), any other number lacks its unit.
func (d *Duration) decodeYAML(dec *decoder, n *yaml.Node, path string) {
	if f, isNum, err := number(n); isNum {
		if err != nil || f != 0 {
			dec.errorf(n, path, "%s: expected a duration such as 90s, got %s (a duration needs a unit)", dec.label(path), kindName(n))
		}
		*d = Duration{}
		return
	}
	if !isString(n) {
		dec.errorf(n, path, "%s: expected a duration such as 90s, got %s", dec.label(path), kindName(n))
		return
	}
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		dec.errorf(n, path, "%s: %v", dec.label(path), err)
	}
}

// Quantity is a Kubernetes resource quantity ("32Gi", "500G") in whole
// bytes.
type Quantity struct {
	resource.Quantity
	raw string
}

// ParseQuantity parses a size: a Kubernetes quantity in whole bytes.
func ParseQuantity(s string) (Quantity, error) {
	if costlyQuantity(s) {
		return Quantity{}, fmt.Errorf("invalid size %q (want a Kubernetes quantity in whole bytes such as 32Gi or 500G)", clip(s))
	}
	if strings.HasPrefix(s, "-") {
		return Quantity{}, fmt.Errorf("invalid size %q: must not be negative", clip(s))
	}
	if strings.HasSuffix(s, "m") && sizeSyntax.MatchString(strings.TrimSuffix(s, "m")) {
		return Quantity{}, fmt.Errorf("invalid size %q: m means milli (thousandths of a byte); write %sM or %sMi", clip(s), clip(s[:len(s)-1]), clip(s[:len(s)-1]))
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || !sizeSyntax.MatchString(s) {
		return Quantity{}, fmt.Errorf("invalid size %q (want a Kubernetes quantity in whole bytes such as 32Gi or 500G)", clip(s))
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

// decodeYAML reads a size string, or a whole number of bytes.
func (q *Quantity) decodeYAML(dec *decoder, n *yaml.Node, path string) {
	if f, isNum, err := number(n); isNum {
		switch {
		case err != nil || f != math.Trunc(f) || f >= math.MaxInt64,
			f == 0 && strings.Trim(n.Value, "0.+-") != "": // 1e-999 underflows to 0
			dec.errorf(n, path, "%s: expected a size such as 32Gi or a whole number of bytes, got %s", dec.label(path), kindName(n))
		case f < 0:
			dec.errorf(n, path, "%s: invalid size %s: must not be negative", dec.label(path), clip(n.Value))
		default:
			*q = Quantity{Quantity: *resource.NewQuantity(int64(f), resource.DecimalSI)}
		}
		return
	}
	if !isString(n) {
		dec.errorf(n, path, "%s: expected a size such as 32Gi, got %s", dec.label(path), kindName(n))
		return
	}
	if err := q.UnmarshalText([]byte(n.Value)); err != nil {
		dec.errorf(n, path, "%s: %v", dec.label(path), err)
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

// isString reports whether n is a string, as in JSON: YAML 1.2 (and so an
// editor) reads a date such as 2024-01-01 as one too.
func isString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" || n.ShortTag() == "!!timestamp")
}

// number reads a YAML number as YAML resolves it (0x10, 1_000, 1e3), the
// value an editor's JSON Schema validator sees. isNum is false for any other
// node; err is set for numbers JSON cannot hold (.inf, .nan) or that
// overflow.
func number(n *yaml.Node) (f float64, isNum bool, err error) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		return 0, false, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return 0, true, err
	}
	switch x := v.(type) {
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	default:
		return 0, true, errNotNumber
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, true, errNotNumber
	}
	return f, true, nil
}

var errNotNumber = errors.New("not a finite number")

// integer reads a YAML integer. An integral float (3.0, 1e3) is one too:
// JSON, and so the JSON Schema, does not tell them apart.
func integer(n *yaml.Node) (int64, error) {
	f, isNum, err := number(n)
	switch {
	case !isNum || (err == nil && f != math.Trunc(f)):
		return 0, fmt.Errorf("expected an integer, got %s", kindName(n))
	case n.ShortTag() == "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return i, nil // exact, where float64 would round
		}
	case err == nil && f >= -(1<<63) && f < 1<<63:
		return int64(f), nil // exact: f is integral
	}
	return 0, fmt.Errorf("invalid integer %q", clip(n.Value))
}

// float reads a YAML number.
func float(n *yaml.Node) (float64, error) {
	f, isNum, err := number(n)
	switch {
	case !isNum:
		return 0, fmt.Errorf("expected a number, got %s", kindName(n))
	case err != nil:
		return 0, fmt.Errorf("invalid number %q", clip(n.Value))
	}
	return f, nil
}
