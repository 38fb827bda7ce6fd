package scenarios

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Schema is a JSON Schema (draft 2020-12) node: the keywords the scenario
// format needs. False is the schema nothing satisfies.
type Schema struct {
	Schema               string     `json:"$schema,omitempty"`
	ID                   string     `json:"$id,omitempty"`
	Title                string     `json:"title,omitempty"`
	Description          string     `json:"description,omitempty"`
	Type                 any        `json:"type,omitempty"`
	Enum                 []string   `json:"enum,omitempty"`
	Const                any        `json:"const,omitempty"`
	Pattern              string     `json:"pattern,omitempty"`
	MaxLength            int        `json:"maxLength,omitempty"`
	Minimum              *float64   `json:"minimum,omitempty"`
	ExclusiveMinimum     *float64   `json:"exclusiveMinimum,omitempty"`
	Maximum              *float64   `json:"maximum,omitempty"`
	Items                *Schema    `json:"items,omitempty"`
	MinItems             int        `json:"minItems,omitempty"`
	MaxItems             int        `json:"maxItems,omitempty"`
	UniqueItems          bool       `json:"uniqueItems,omitempty"`
	Required             []string   `json:"required,omitempty"`
	Properties           Properties `json:"properties,omitempty"`
	PropertyNames        *Schema    `json:"propertyNames,omitempty"`
	AdditionalProperties *Schema    `json:"additionalProperties,omitempty"`
	AnyOf                []*Schema  `json:"anyOf,omitempty"`
	AllOf                []*Schema  `json:"allOf,omitempty"`
	Not                  *Schema    `json:"not,omitempty"`
	If                   *Schema    `json:"if,omitempty"`
	Then                 *Schema    `json:"then,omitempty"`
	Else                 *Schema    `json:"else,omitempty"`
	False                bool       `json:"-"`
}

// Property is one entry of Properties.
type Property struct {
	Name   string
	Schema *Schema
}

// Properties keeps the file's field order (editors list them so).
type Properties []Property

// MarshalJSON writes an object in order.
func (ps Properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.Name)
		v, err := json.Marshal(p.Schema)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON writes false for False.
func (s *Schema) MarshalJSON() ([]byte, error) {
	if s.False {
		return []byte("false"), nil
	}
	type plain Schema
	return json.Marshal((*plain)(s))
}

// JSONSchema returns the scenario format's JSON Schema, generated from the
// field rules that Validate checks. What it cannot say (references between
// fields, unique names, placement) Validate alone checks.
func JSONSchema() *Schema {
	s := objectSchema(reflect.TypeFor[Scenario](), "")
	s.Schema = "https://json-schema.org/draft/2020-12/schema"
	s.ID = "https://chaosloop.dev/schemas/scenario.json"
	s.Title = "chaosloop scenario"
	s.Description = "A planned deployment: sites, racks, power feeds, switches and nodes, the services placed on them, and optionally the load, faults and expectations of a run. Reference: docs/scenario.md."
	return s
}

func objectSchema(t reflect.Type, rpath string) *Schema {
	s := &Schema{Type: "object", AdditionalProperties: &Schema{False: true}}
	only := map[*Cond][]string{}
	var conds []*Cond
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		r := ruleFor(joinPath(rpath, name))
		s.Properties = append(s.Properties, Property{name, fieldSchema(r, t.Field(i).Type)})
		if r.Required {
			s.Required = append(s.Required, name)
		}
		if c := r.Only; c != nil {
			if _, ok := only[c]; !ok {
				conds = append(conds, c)
			}
			only[c] = append(only[c], name)
		}
		if c := r.NeededWhen; c != nil {
			var alts []*Schema
			for _, k := range append([]string{name}, r.Or...) {
				alts = append(alts, &Schema{Required: []string{k}, Properties: Properties{{k, &Schema{Not: &Schema{Type: "null"}}}}})
			}
			s.AllOf = append(s.AllOf, &Schema{If: condSchema(c), Then: &Schema{AnyOf: alts}})
		}
	}
	for _, c := range conds {
		var none Properties
		for _, f := range only[c] {
			none = append(none, Property{f, &Schema{False: true}})
		}
		s.AllOf = append(s.AllOf, &Schema{If: condSchema(c), Else: &Schema{Properties: none}})
	}
	if t == reflect.TypeFor[Fault]() {
		s.AllOf = append(s.AllOf, actionTargetSchemas()...)
	}
	return s
}

// condSchema holds for an object whose field is one of the values.
func condSchema(c *Cond) *Schema {
	return &Schema{Required: []string{c.Field}, Properties: Properties{{c.Field, &Schema{Enum: c.Values}}}}
}

// actionTargetSchemas restrict each action to its target kinds.
func actionTargetSchemas() []*Schema {
	var out []*Schema
	for _, a := range Actions {
		out = append(out, &Schema{
			If:   condSchema(&Cond{Field: "action", Values: []string{a}}),
			Then: &Schema{Properties: Properties{{"target", &Schema{Pattern: TargetPattern(actionTargets[a]...)}}}},
		})
	}
	return out
}

func fieldSchema(r *Rule, t reflect.Type) *Schema {
	var s *Schema
	switch t {
	case reflect.TypeFor[string]():
		s = stringSchema(r)
	case reflect.TypeFor[[]string]():
		s = &Schema{Type: "array", Items: stringSchema(r)}
	case reflect.TypeFor[*int](), reflect.TypeFor[*float64]():
		s = numberSchema(r, t == reflect.TypeFor[*int]())
	case reflect.TypeFor[*Duration]():
		s = durationSchema(r)
	case reflect.TypeFor[*Quantity]():
		s = &Schema{AnyOf: []*Schema{{Type: "string", Pattern: SizePattern(r.Max)}, numberSchema(r, true)}}
	case reflect.TypeFor[*Failover]():
		d := durationSchema(r)
		s = &Schema{AnyOf: []*Schema{d, {Type: "object", PropertyNames: stringSchema(&Rule{Format: FormatLabel}), AdditionalProperties: d}}}
	default:
		switch t.Kind() {
		case reflect.Pointer:
			s = objectSchema(t.Elem(), r.Path)
		case reflect.Slice:
			s = &Schema{Type: "array", Items: objectSchema(t.Elem(), r.Path+"[]")}
		default:
			panic(fmt.Sprintf("scenarios: no schema for %s (%s)", t, r.Path))
		}
	}
	if s.Type == "array" {
		s.MinItems, s.MaxItems, s.UniqueItems = r.MinItems, r.MaxItems, r.Unique
	}
	s.Description = describe(r, t)
	if !r.Required {
		// null (key: with nothing after it) is the same as leaving the
		// field out.
		if s.Type != nil {
			s.Type = []string{s.Type.(string), "null"}
		} else {
			s.AnyOf = append(s.AnyOf, &Schema{Type: "null"})
		}
	}
	return s
}

func stringSchema(r *Rule) *Schema {
	s := &Schema{Type: "string", Enum: r.Enum}
	switch r.Format {
	case FormatLabel:
		s.Pattern, s.MaxLength = LabelPattern, MaxNameLen
	case FormatPool:
		s.Pattern, s.MaxLength = PoolPattern, MaxNameLen
	case FormatTarget:
		s.Pattern = TargetPattern()
	case FormatSelector:
		s.Pattern, s.MaxLength = SelectorPattern, MaxSelectorLen
	}
	return s
}

func numberSchema(r *Rule, integer bool) *Schema {
	s := &Schema{Type: "number", Maximum: &r.Max}
	if integer {
		s.Type = "integer"
	}
	if r.Exclusive {
		s.ExclusiveMinimum = &r.Min
	} else {
		s.Minimum = &r.Min
	}
	return s
}

// durationSchema: a duration string, or the number 0 where zero is allowed.
func durationSchema(r *Rule) *Schema {
	str := &Schema{Type: "string", Pattern: DurationPattern(r.Max)}
	if r.Exclusive {
		// Positive: some digit is not zero.
		str.AllOf = []*Schema{{Pattern: "[1-9]"}}
		return &Schema{AnyOf: []*Schema{str}}
	}
	return &Schema{AnyOf: []*Schema{str, {Const: 0}}}
}

// describe is a field's description: its meaning, default and range.
func describe(r *Rule, t reflect.Type) string {
	parts := []string{r.Doc}
	if a := allowed(r, t); a != "" {
		parts = append(parts, "Allowed: "+a+".")
	}
	if r.Default != "" {
		parts = append(parts, "Default: "+r.Default+".")
	}
	return strings.Join(parts, " ")
}

// allowed says in words which values a field takes.
func allowed(r *Rule, t reflect.Type) string {
	var show func(float64) string
	switch t {
	case reflect.TypeFor[*int](), reflect.TypeFor[*float64]():
		show = fmtThousands
	case reflect.TypeFor[*Duration](), reflect.TypeFor[*Failover]():
		show = fmtDurationNs
	case reflect.TypeFor[*Quantity]():
		show = fmtSize
	}
	var out []string
	switch {
	case len(r.Enum) > 0:
		out = append(out, strings.Join(r.Enum, ", "))
	case r.Format == FormatLabel:
		out = append(out, "DNS-1123 labels")
	case r.Format == FormatPool:
		out = append(out, "upper-case DNS-1123 labels")
	case r.Format == FormatTarget:
		out = append(out, "a target of a kind the action takes")
	case r.Format == FormatSelector:
		out = append(out, "key=value, …")
	}
	if r.MinItems > 0 && r.MinItems == r.MaxItems {
		out = append(out, fmt.Sprintf("exactly %d", r.MinItems))
	} else if r.MinItems > 0 {
		out = append(out, fmt.Sprintf("at least %d", r.MinItems))
	}
	if r.Unique {
		out = append(out, "no repeats")
	}
	if show != nil {
		lo := "≥ " + show(r.Min)
		if r.Exclusive {
			lo = "> " + show(r.Min)
		}
		out = append(out, lo, "≤ "+show(r.Max))
	}
	if len(out) == 1 && strings.HasSuffix(out[0], "labels") {
		out[0] = strings.TrimSuffix(out[0], "s")
	}
	return strings.Join(out, ", ")
}

// fmtThousands writes a number with thousands separators (10,000).
func fmtThousands(x float64) string {
	s := fmtNumber(x)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}
