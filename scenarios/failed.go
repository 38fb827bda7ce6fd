package scenarios

import "strings"

// failedAt reports whether the value at path, or one holding it, failed to
// decode. Such a value is left unset and reported once: validating it, or
// other fields against it, would only repeat the error in other words
// (`replicas: three` is not "replicas must be at least 1").
func (s *Scenario) failedAt(path string) bool {
	if len(s.failed) == 0 {
		return false
	}
	for {
		if s.failed[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return s.failed[""]
		}
		path = path[:i]
	}
}

// namesHidden reports whether a decoding error under section ("sites" or
// "services") may have hidden a name that references are checked against:
// a name, or a list or entry that holds names, failed. A node's cpu,
// memory or disk hides none.
func (s *Scenario) namesHidden(section string) bool {
	for p := range s.failed {
		if !underPath(p, section) {
			continue
		}
		if section == "services" {
			// services, services[i] or services[i].name
			field, _ := strings.CutPrefix(p[len(section):], "[")
			if _, f, _ := strings.Cut(field, "."); f == "" || f == "name" {
				return true
			}
			continue
		}
		if last := p[strings.LastIndexAny(p, ".[")+1:]; last != "cpu" && last != "memory" && last != "disk" {
			return true
		}
	}
	return false
}
