package judge

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chaosloop/chaosloop/scenarios"
)

// setting is one expectation to apply: a --expect key=value, or one key of
// an --expect-file's expect: block.
type setting struct {
	key, value string
	// from says where and what it was, for messages: "--expect k=v" or
	// "file:line:column: k".
	from string
}

// expectKey is one row of the table of expectations judge can override.
type expectKey struct {
	name string
	// form describes a valid value, for messages.
	form string
	// perService: the key also takes a ".SERVICE" suffix
	// (failover.central-ledger=20s).
	perService bool
	// set validates value and stores it in e; service is the suffix ("" for
	// none). Returning errValue prints form.
	set func(sc *scenarios.Scenario, e *scenarios.Expect, service, value string) error
}

// errValue marks a value that is not of the key's form.
var errValue = errors.New("invalid value")

// errNotSupported marks a key this build knows of but cannot apply.
var errNotSupported = errors.New("not supported yet")

// expectKeys is the table: one row per key of a scenario's expect section.
// It is a function, not a package variable, so nothing is shared state.
func expectKeys() []expectKey {
	return []expectKey{
		{name: "quorum", form: "held or any", set: func(_ *scenarios.Scenario, e *scenarios.Expect, _, v string) error {
			if v != "held" && v != "any" {
				return errValue
			}
			e.Quorum = v
			return nil
		}},
		{name: "acknowledgedLoss", form: "a whole number ≥ 0 (acknowledged writes allowed lost)", set: func(_ *scenarios.Scenario, e *scenarios.Expect, _, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errValue
			}
			e.AcknowledgedLoss = &n
			return nil
		}},
		{name: "throughput", form: "a fraction of baseline from 0 to 1, such as 0.8", set: func(_ *scenarios.Scenario, e *scenarios.Expect, _, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
				return errValue
			}
			e.Throughput = &f
			return nil
		}},
		{name: "recovery", form: "a duration such as 30s or 2m", set: func(_ *scenarios.Scenario, e *scenarios.Expect, _, v string) error {
			d, err := scenarios.ParseDuration(v)
			if err != nil {
				return errValue
			}
			e.Recovery = &d
			return nil
		}},
		{name: "failover", form: "a duration such as 20s; per service: failover.SERVICE=20s", perService: true,
			set: func(sc *scenarios.Scenario, e *scenarios.Expect, service, v string) error {
				d, err := scenarios.ParseDuration(v)
				if err != nil || d.Duration <= 0 {
					return errValue
				}
				if service != "" && !slices.ContainsFunc(sc.Services, func(s scenarios.Service) bool { return s.Name == service }) {
					return fmt.Errorf("scenario %s has no service %q", sc.Name, service)
				}
				setFailover(sc, e, service, d)
				return nil
			}},
	}
}

// setFailover sets expect.failover for one service, or for all when service
// is empty. A per-service value after a value for all keeps that value for
// the other services.
func setFailover(sc *scenarios.Scenario, e *scenarios.Expect, service string, d scenarios.Duration) {
	f := &scenarios.Failover{}
	if e.Failover != nil {
		f.All = e.Failover.All
		f.Services = maps.Clone(e.Failover.Services)
	}
	if service == "" {
		e.Failover = &scenarios.Failover{All: &d}
		return
	}
	if f.All != nil {
		f.Services = map[string]scenarios.Duration{}
		for _, s := range sc.Services {
			f.Services[s.Name] = *f.All
		}
		f.All = nil
	}
	if f.Services == nil {
		f.Services = map[string]scenarios.Duration{}
	}
	f.Services[service] = d
	e.Failover = f
}

// applyExpect applies the settings in order (a later one wins) to
// sc.Expect, which must hold the scenario's expectations with defaults. It
// returns what changed ("throughput 0.5 → 0.99") and every invalid setting
// at once.
func applyExpect(sc *scenarios.Scenario, settings []setting) (changed []string, err error) {
	if sc.Expect == nil {
		sc.Expect = &scenarios.Expect{}
	}
	before := *sc.Expect
	table := expectKeys()
	var errs []error
	for _, s := range settings {
		name, service, dotted := strings.Cut(strings.TrimPrefix(s.key, "expect."), ".")
		i := slices.IndexFunc(table, func(k expectKey) bool { return strings.EqualFold(k.name, name) })
		if i < 0 {
			names := make([]string, len(table))
			for j, k := range table {
				names[j] = k.name
			}
			errs = append(errs, fmt.Errorf("%s: unknown expectation (known: %s)", s.from, strings.Join(names, ", ")))
			continue
		}
		k := table[i]
		switch {
		case dotted && !k.perService:
			errs = append(errs, fmt.Errorf("%s: %s takes no .SERVICE suffix", s.from, k.name))
			continue
		case dotted && service == "":
			errs = append(errs, fmt.Errorf("%s: %s. needs a service name after the dot", s.from, k.name))
			continue
		}
		err := k.set(sc, sc.Expect, service, strings.TrimSpace(s.value))
		switch {
		case errors.Is(err, errValue):
			errs = append(errs, fmt.Errorf("%s: %s wants %s, not %q", s.from, k.name, k.form, s.value))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.from, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := sc.Expect
	if before.Quorum != e.Quorum {
		changed = append(changed, fmt.Sprintf("quorum %s → %s", before.Quorum, e.Quorum))
	}
	if v, w := deref(before.AcknowledgedLoss), deref(e.AcknowledgedLoss); v != w {
		changed = append(changed, fmt.Sprintf("acknowledgedLoss %d → %d", v, w))
	}
	if v, w := deref(before.Throughput), deref(e.Throughput); v != w {
		changed = append(changed, fmt.Sprintf("throughput %g → %g", v, w))
	}
	if v, w := before.Recovery.D(), e.Recovery.D(); v != w {
		changed = append(changed, fmt.Sprintf("recovery %s → %s", v, w))
	}
	for _, sv := range sc.Services {
		v, vok := before.FailoverFor(sv.Name)
		w, wok := e.FailoverFor(sv.Name)
		if v != w || vok != wok {
			changed = append(changed, fmt.Sprintf("failover of %s %s → %s", sv.Name, budgetText(v, vok), budgetText(w, wok)))
		}
	}
	return changed, nil
}

func budgetText(d time.Duration, set bool) string {
	if !set {
		return "engine default"
	}
	return d.String()
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// flagSettings parses repeated --expect key=value flags.
func flagSettings(flags []string) ([]setting, error) {
	var out []setting
	var errs []error
	for _, f := range flags {
		key, value, ok := strings.Cut(f, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			errs = append(errs, fmt.Errorf("--expect %s: want key=value, such as throughput=0.8", f))
			continue
		}
		out = append(out, setting{key: key, value: value, from: "--expect " + f})
	}
	return out, errors.Join(errs...)
}

// fileSettings reads the expect: block of a YAML file. Other top-level keys
// are ignored, so a scenario file can lend its expectations to an old run.
// A mapping under a key (failover: {svc: 20s}) becomes key.SUBKEY settings.
func fileSettings(path string) ([]setting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--expect-file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a YAML mapping with an expect: block", path)
	}
	root := doc.Content[0]
	var block *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "expect" {
			block = root.Content[i+1]
		}
	}
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", path, n.Line, n.Column) }
	switch {
	case block == nil:
		return nil, fmt.Errorf("%s: no expect: block", path)
	case block.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("%s: expect: want a mapping of expectations (quorum: held, throughput: 0.8, ...)", at(block))
	}
	var out []setting
	var errs []error
	for i := 0; i+1 < len(block.Content); i += 2 {
		k, v := block.Content[i], block.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			out = append(out, setting{key: k.Value, value: v.Value, from: at(v) + ": " + k.Value})
		case yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				sk, sv := v.Content[j], v.Content[j+1]
				if sv.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("%s: %s.%s: want a single value", at(sv), k.Value, sk.Value))
					continue
				}
				key := k.Value + "." + sk.Value
				out = append(out, setting{key: key, value: sv.Value, from: at(sv) + ": " + key})
			}
		default:
			errs = append(errs, fmt.Errorf("%s: %s: want a value or a mapping", at(v), k.Value))
		}
	}
	return out, errors.Join(errs...)
}
