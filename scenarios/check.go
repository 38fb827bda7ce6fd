package scenarios

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file checks every field against its rule (rules.go): required
// fields, name shapes, enums, bounds, list lengths, repeats and fields that
// apply to some kinds only. validate.go adds the cross-field rules.

// fields checks each field of the struct val, written at path, whose rules
// are under rpath; it recurses into objects and lists.
func (v *validator) fields(val reflect.Value, path, rpath string) {
	t := val.Type()
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		v.field(ruleFor(joinPath(rpath, name)), val, val.Field(i), joinPath(path, name), path)
	}
}

// yamlName is a field's key in the file, "" for fields that are not read.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if !f.IsExported() || name == "-" {
		return ""
	}
	return name
}

func (v *validator) field(r *Rule, obj, fv reflect.Value, path, objPath string) {
	if c := r.Only; c != nil && v.s.Has(path) && !c.holds(fieldByKey(obj, c.Field).String()) {
		v.add(path, "%s applies to %s only", r.field(), c.Says)
		return
	}
	if c := r.NeededWhen; c != nil && c.holds(fieldByKey(obj, c.Field).String()) && fv.IsZero() &&
		!slices.ContainsFunc(r.Or, func(k string) bool { return !fieldByKey(obj, k).IsZero() }) {
		v.add(objPath, "%s need %s", c.Says, strings.Join(append([]string{r.field()}, r.Or...), " or "))
	}
	if r.Required && fv.Kind() == reflect.Pointer && fv.IsNil() {
		v.add(path, "%s is required", ours(path))
		return
	}
	switch x := fv.Interface().(type) {
	case string:
		v.str(r, path, x)
	case []string:
		v.list(r, path, len(x))
		seen := map[string]bool{}
		for i, s := range x {
			p := fmt.Sprintf("%s[%d]", path, i)
			if v.str(r, p, s) && r.Unique {
				if seen[s] {
					v.add(p, "%s %q is listed twice%s", r.Noun, s, paren(r.Hint))
				}
				seen[s] = true
			}
		}
	case *int:
		if x != nil {
			v.bounds(r, path, path, float64(*x), strconv.Itoa(*x), fmtNumber)
		}
	case *float64:
		if x != nil {
			v.bounds(r, path, path, *x, fmtNumber(*x), fmtNumber)
		}
	case *Duration:
		if x != nil {
			v.bounds(r, path, path, float64(x.Duration), fmtDuration(x.Duration), fmtDurationNs)
		}
	case *Quantity:
		if x != nil {
			v.bounds(r, path, path, float64(x.Value()), x.String(), fmtSize)
		}
	case *Failover:
		v.failover(r, path, x)
	default:
		v.nested(r, fv, path)
	}
}

// nested checks an object or a list of objects.
func (v *validator) nested(r *Rule, fv reflect.Value, path string) {
	switch fv.Kind() {
	case reflect.Pointer:
		if !fv.IsNil() {
			v.fields(fv.Elem(), path, r.Path)
		}
	case reflect.Slice:
		v.list(r, path, fv.Len())
		for i := range fv.Len() {
			v.fields(fv.Index(i), fmt.Sprintf("%s[%d]", path, i), r.Path+"[]")
		}
	default:
		panic(fmt.Sprintf("scenarios: no check for %s (%s)", fv.Type(), path))
	}
}

// fieldByKey returns obj's field written as key.
func fieldByKey(obj reflect.Value, key string) reflect.Value {
	t := obj.Type()
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return obj.Field(i)
		}
	}
	panic("scenarios: no field " + key)
}

// str checks a string; it reports whether the string is a valid value.
func (v *validator) str(r *Rule, path, s string) bool {
	if s == "" {
		if r.Required {
			v.add(path, "%s is required%s", ours(path), ours(paren(oneOf(r.Enum))))
		}
		return false
	}
	noun := r.Noun + " name"
	switch r.Format {
	case FormatPool:
		noun = r.Noun
		if !validName(FormatPool, s) {
			v.badName(path, noun, s, "is not a pool name (upper-case letters, digits and '-', starting and ending with a letter or digit)")
			return false
		}
	case FormatLabel:
		if !validName(FormatLabel, s) {
			v.badName(path, noun, s, "is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)")
			return false
		}
	case FormatSelector:
		if !validName(FormatSelector, s) {
			if len(s) > MaxSelectorLen {
				v.add(path, "selector is too long: %d characters, at most %d", len(s), MaxSelectorLen)
			} else {
				v.add(path, "selector %q is not an equality-based label selector (key=value pairs separated by commas, Kubernetes' label syntax)", s)
			}
			return false
		}
	}
	if len(r.Enum) > 0 && !slices.Contains(r.Enum, s) {
		v.add(path, "unknown %s %q%s", r.Noun, s, ours(paren(oneOf(r.Enum))))
		return false
	}
	return true
}

func (v *validator) badName(path, noun, s, shape string) {
	if len(s) > MaxNameLen {
		v.add(path, "%s %q is too long: %d characters, at most %d", noun, s, len(s), MaxNameLen)
		return
	}
	v.add(path, "%s %q %s", noun, s, ours(shape))
}

// list checks a list's length.
func (v *validator) list(r *Rule, path string, n int) {
	switch {
	case r.MinItems > 0 && r.MinItems == r.MaxItems && n != r.MinItems:
		v.add(path, "%s must have exactly %d entries, got %d", ours(path), r.MinItems, n)
	case n < r.MinItems:
		v.add(path, "%s: at least one %s is required", ours(path), r.Noun)
	}
}

// bounds checks a number (a duration in nanoseconds, a size in bytes)
// against the rule's range; label names it, got is how it was written.
func (v *validator) bounds(r *Rule, label, path string, x float64, got string, show func(float64) string) {
	l := ours(label)
	switch {
	case r.Exclusive && x <= r.Min && r.Min == 0:
		v.add(path, "%s must be positive%s", l, paren(r.Hint))
	case r.Exclusive && x <= r.Min:
		v.add(path, "%s must be greater than %s%s", l, show(r.Min), paren(r.Hint))
	case x < r.Min && r.Min == 0:
		v.add(path, "%s must not be negative", l)
	case x < r.Min:
		v.add(path, "%s must be at least %s%s", l, show(r.Min), paren(r.Hint))
	case x > r.Max:
		v.add(path, "%s must be at most %s, got %s", l, show(r.Max), got)
	}
}

// failover checks expect.failover's budgets; validate.go checks that the
// map names services.
func (v *validator) failover(r *Rule, path string, f *Failover) {
	if f == nil {
		return
	}
	if f.All != nil {
		v.bounds(r, path, path, float64(f.All.Duration), fmtDuration(f.All.Duration), fmtDurationNs)
	}
	for _, name := range slices.Sorted(maps.Keys(f.Services)) {
		d := f.Services[name].Duration
		v.bounds(r, fmt.Sprintf("%s: the budget of %q", path, clip(name)), path+"."+name, float64(d), fmtDuration(d), fmtDurationNs)
	}
}

// ours marks a string chaosloop wrote (a field path), which add must not
// clip as it does user input.
type ours string

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func oneOf(enum []string) string {
	if len(enum) == 0 {
		return ""
	}
	return "one of " + strings.Join(enum, ", ")
}

func fmtNumber(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func fmtDurationNs(x float64) string { return fmtDuration(time.Duration(x)) }

// fmtSize writes bytes with the largest binary suffix that divides them.
func fmtSize(x float64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		u := sizeUnits[i]
		if strings.HasSuffix(u.suffix, "i") && x >= u.factor && x == float64(int64(x/u.factor))*u.factor {
			return fmtNumber(x/u.factor) + u.suffix
		}
	}
	return fmtNumber(x)
}
