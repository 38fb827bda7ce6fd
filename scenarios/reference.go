package scenarios

import (
	"fmt"
	"reflect"
	"strings"
)

// FieldReference returns the field tables of docs/scenario.md, generated
// from the rules: one table per kind of object, every field with its type,
// default, allowed values and meaning.
func FieldReference() string {
	var b strings.Builder
	last := ""
	walkFields(reflect.TypeFor[Scenario](), "", func(obj string, r *Rule, t reflect.Type) {
		if h := heading(obj); h != last {
			if last != "" {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s\n\n| field | type | default | allowed | meaning |\n|---|---|---|---|---|\n", h)
			last = h
		}
		def := r.Default
		if r.Required {
			def = "required"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", r.field(), typeName(t), def, allowed(r, t), r.Doc)
	})
	return b.String()
}

// walkFields visits every field of t (rules under rpath) depth first:
// an object's own fields before the objects they hold.
func walkFields(t reflect.Type, rpath string, visit func(obj string, r *Rule, t reflect.Type)) {
	var nested []func()
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		r, ft := ruleFor(joinPath(rpath, name)), t.Field(i).Type
		visit(rpath, r, ft)
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			nested = append(nested, func() { walkFields(ft.Elem(), r.Path+"[]", visit) })
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && ft != reflect.TypeFor[*Failover]() &&
			ft != reflect.TypeFor[*Duration]() && ft != reflect.TypeFor[*Quantity]():
			nested = append(nested, func() { walkFields(ft.Elem(), r.Path, visit) })
		}
	}
	for _, f := range nested {
		f()
	}
}

func heading(obj string) string {
	if obj == "" {
		return "#### The file"
	}
	return "#### `" + obj + "`"
}

// typeName names a field's type for users.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[string]():
		return "string"
	case reflect.TypeFor[[]string]():
		return "list of strings"
	case reflect.TypeFor[*int]():
		return "integer"
	case reflect.TypeFor[*float64]():
		return "number"
	case reflect.TypeFor[*Duration]():
		return "duration"
	case reflect.TypeFor[*Quantity]():
		return "size"
	case reflect.TypeFor[*Failover]():
		return "duration, or mapping of service to duration"
	}
	if t.Kind() == reflect.Slice {
		return "list of mappings"
	}
	return "mapping"
}
