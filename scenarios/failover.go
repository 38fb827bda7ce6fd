package scenarios

import (
	"bytes"
	"encoding/json"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

// Failover is expect.failover, the longest write outage allowed per service
// after a fault: one duration for every service, or a map from service name
// to duration. Services it does not name get the default derived from their
// engine's timeouts (computed by the run, not here).
type Failover struct {
	// All applies to every service; nil when the file wrote a map.
	All *Duration
	// Services holds the per-service budgets of the map form.
	Services map[string]Duration
}

// FailoverFor returns the failover budget the file sets for a service, and
// false when it sets none (the caller then uses the engine's default).
func (e *Expect) FailoverFor(service string) (time.Duration, bool) {
	if e == nil || e.Failover == nil {
		return 0, false
	}
	f := e.Failover
	if f.All != nil {
		return f.All.Duration, true
	}
	if d, ok := f.Services[service]; ok {
		return d.Duration, true
	}
	return 0, false
}

// nodeDecoder is implemented by types whose YAML shape the reflective
// decoder cannot follow (a scalar or a mapping).
type nodeDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, path string)
}

// decodeYAML reads a duration or a {service: duration} mapping. Each map
// entry's path is expect.failover.NAME, positioned at its key so that
// validation can point at an unknown service name.
func (f *Failover) decodeYAML(d *decoder, n *yaml.Node, path string) {
	durationType := reflect.TypeFor[Duration]()
	switch n.Kind {
	case yaml.ScalarNode:
		v := reflect.New(durationType)
		d.decode(n, v.Elem(), path)
		if !d.failed[path] {
			f.All = v.Interface().(*Duration)
		}
	case yaml.MappingNode:
		f.Services = map[string]Duration{}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" || k.Value == "<<" {
				d.errorf(k, path, "%s: keys must be service names", path)
				continue
			}
			kp := path + "." + k.Value
			if seen[k.Value] {
				d.errorf(k, "", "%s: duplicate key %q", path, clip(k.Value))
				continue
			}
			seen[k.Value] = true
			if val.Kind != yaml.ScalarNode {
				d.errorf(val, kp, "%s: expected a duration, got %s", d.label(kp), kindName(val))
				continue
			}
			v := reflect.New(durationType)
			d.decode(val, v.Elem(), kp)
			d.pos[kp] = Pos{k.Line, k.Column}
			if !d.failed[kp] {
				f.Services[k.Value] = *v.Interface().(*Duration)
			}
		}
	default:
		d.errorf(n, path, "%s: expected a duration or a mapping of service names to durations, got %s", path, kindName(n))
	}
}

// MarshalJSON writes the form the file used: a string or an object.
func (f Failover) MarshalJSON() ([]byte, error) {
	if f.All != nil {
		return json.Marshal(f.All)
	}
	return json.Marshal(f.Services)
}

// UnmarshalJSON reads a duration string or an object of them.
func (f *Failover) UnmarshalJSON(b []byte) error {
	*f = Failover{}
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		var d Duration
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		f.All = &d
		return nil
	}
	return json.Unmarshal(b, &f.Services)
}
