package bmc

import (
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/clusters/k3s/sidefile"
	"github.com/chaosloop/chaosloop/scenarios"
)

// problems collects an inventory's problems, all reported at once.
type problems = sidefile.Problems

func posOf(n *yaml.Node) scenarios.Pos { return sidefile.Pos(n) }

// decode parses an inventory strictly: unknown and duplicate fields,
// mistyped values and literal passwords are problems, all collected. A nil
// inventory means the file could not be parsed at all.
func decode(file string, data []byte) (*Inventory, *problems) {
	errs := &problems{File: file}
	if len(data) > MaxFileBytes {
		errs.Add(scenarios.Pos{Line: 1, Column: 1}, "the file is longer than %d MiB, the most a BMC inventory may be", MaxFileBytes>>20)
		return nil, errs
	}
	root := sidefile.Document(errs, data, "BMC inventory", "a bmcs list")
	if root == nil {
		return nil, errs
	}
	inv := &Inventory{File: file}
	d := &decoder{errs: errs, file: file, dir: filepath.Dir(file)}
	d.inventory(root, inv)
	return inv, errs
}

type decoder struct {
	errs      *problems
	file, dir string
}

// mapping walks a mapping's keys, reporting duplicates and non-string
// keys, and calls field for the rest in order.
func (d *decoder) mapping(n *yaml.Node, what string, field func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		d.errs.Add(posOf(n), "%s must be a mapping, not %s", what, kindName(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			d.errs.Add(posOf(k), "%s: keys must be plain field names", what)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errs.Add(posOf(k), "%s: field %q is given twice (first on line %d)", what, k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		field(k.Value, k, v)
	}
	return true
}

func (d *decoder) inventory(n *yaml.Node, inv *Inventory) {
	d.mapping(n, "the inventory", func(key string, k, v *yaml.Node) {
		if key != "bmcs" {
			d.errs.Add(posOf(k), "unknown field %q: the inventory has one field, bmcs", key)
			return
		}
		if v.Kind != yaml.SequenceNode {
			d.errs.Add(posOf(v), "bmcs must be a list of BMCs, not %s", kindName(v))
			return
		}
		for i, item := range v.Content {
			inv.BMCs = append(inv.BMCs, d.bmc(item, fmt.Sprintf("bmcs[%d]", i)))
		}
	})
}

// stringFields are a BMC's string fields, by their YAML names.
var stringFields = map[string]func(*BMC) *string{
	"node":         func(b *BMC) *string { return &b.Node },
	"protocol":     func(b *BMC) *string { return (*string)(&b.Protocol) },
	"address":      func(b *BMC) *string { return &b.Address },
	"system":       func(b *BMC) *string { return &b.System },
	"username":     func(b *BMC) *string { return &b.Username },
	"passwordEnv":  func(b *BMC) *string { return &b.PasswordEnv },
	"passwordFile": func(b *BMC) *string { return &b.PasswordFile },
	"interface":    func(b *BMC) *string { return &b.Interface },
}

// literalPassword holds the keys a password itself might be put under.
var literalPassword = map[string]bool{"password": true, "pass": true, "passwd": true, "secret": true}

func (d *decoder) bmc(n *yaml.Node, path string) BMC {
	b := BMC{file: d.file, dir: d.dir, pos: map[string]scenarios.Pos{"": posOf(n)}, failed: map[string]bool{}}
	if !d.mapping(n, path, func(key string, k, v *yaml.Node) {
		b.pos[key] = posOf(v)
		switch {
		case v.Kind == yaml.AliasNode:
			// Aliases would let a small file expand without bound.
			d.errs.Add(posOf(v), "%s.%s: YAML aliases are not supported in a BMC inventory", path, key)
			b.failed[key] = true
		case stringFields[key] != nil:
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
				d.errs.Add(posOf(v), "%s.%s must be a string, not %s (quote it)", path, key, kindName(v))
				b.failed[key] = true
				return
			}
			*stringFields[key](&b) = v.Value
		case key == "insecureSkipVerify":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				d.errs.Add(posOf(v), "%s.%s must be true or false, not %s", path, key, kindName(v))
				b.failed[key] = true
				return
			}
			b.InsecureSkipVerify = v.Value == "true" || v.Value == "True" || v.Value == "TRUE"
		case literalPassword[key]:
			d.errs.Add(posOf(k), "%s.%s: a password may not be written in the inventory (it would end up in version control, backups and bug reports); put it in an environment variable and name it with passwordEnv, or in a file readable only by chaosloop's user and name it with passwordFile", path, key)
		default:
			d.errs.Add(posOf(k), "%s: unknown field %q (fields: node, protocol, address, system, username, passwordEnv, passwordFile, insecureSkipVerify, interface)", path, key)
		}
	}) {
		b.failed[""] = true
	}
	return b
}

func kindName(n *yaml.Node) string { return sidefile.KindName(n) }
