package netlab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// StateFile is the name of the lab's state file inside its state directory.
const StateFile = "netlab.json"

const stateVersion = 1

// State is everything a later process needs to repair or remove the lab.
type State struct {
	Version  int    `json:"version"`
	Plan     Plan   `json:"plan"`
	StateDir string `json:"stateDir"`
	// CgroupRoot is the lab's cgroup v2 directory ("" without cgroup v2).
	CgroupRoot string `json:"cgroupRoot,omitempty"`
	// Isolated holds the canonical paths of isolated targets (node, rack,
	// switch, site, link).
	Isolated []string `json:"isolated,omitempty"`
	// Off and Frozen hold node names.
	Off    []string `json:"off,omitempty"`
	Frozen []string `json:"frozen,omitempty"`
	// DarkRouters holds the sites whose WAN router has no power (spec
	// section 4: powering a site off takes its router down too).
	DarkRouters []string `json:"darkRouters,omitempty"`
	// Rules are the iptables rules installed for latency and loss.
	Rules     []RuleSet `json:"rules,omitempty"`
	NextQueue int       `json:"nextQueue"`
}

// RuleSet is the iptables rules of one latency or loss fault.
type RuleSet struct {
	// Key is "latency <target>" or "loss <target>".
	Key         string  `json:"key"`
	Queue       int     `json:"queue,omitempty"`
	Probability float64 `json:"probability,omitempty"`
	Rules       []Rule  `json:"rules"`
}

// Rule is one iptables rule in a namespace.
type Rule struct {
	NetNS string   `json:"netns"`
	Table string   `json:"table"`
	Chain string   `json:"chain"`
	Spec  []string `json:"spec"`
}

func readState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, want %d", filepath.Join(dir, StateFile), st.Version, stateVersion)
	}
	return st, nil
}

// write saves the state atomically (write then rename), so a crash leaves
// either the old or the new file.
func (st *State) write() error {
	if err := os.MkdirAll(st.StateDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(st.StateDir, StateFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (st *State) isolated(path string) bool { return slices.Contains(st.Isolated, path) }
func (st *State) off(node string) bool      { return slices.Contains(st.Off, node) }
func (st *State) dark(site string) bool     { return slices.Contains(st.DarkRouters, site) }

func addTo(set []string, v string) []string {
	if slices.Contains(set, v) {
		return set
	}
	set = append(set, v)
	slices.Sort(set)
	return set
}

func removeFrom(set []string, v string) []string {
	return slices.DeleteFunc(set, func(s string) bool { return s == v })
}

// cgroupDir is a host's cgroup directory, "" without cgroup v2.
func (st *State) cgroupDir(h *HostPlan) string {
	if st.CgroupRoot == "" {
		return ""
	}
	return filepath.Join(st.CgroupRoot, h.CgroupName)
}
