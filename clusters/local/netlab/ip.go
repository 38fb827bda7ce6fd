package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ipBatch runs iproute2 commands (one per line, without the leading "ip")
// in namespace ns ("" = the caller's) with one exec, stopping at the first
// failure.
func ipBatch(ctx context.Context, ns string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %q -batch: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipJSON runs one iproute2 query with -j in namespace ns and decodes it.
func ipJSON(ctx context.Context, ns string, v any, args ...string) error {
	full := []string{"-j"}
	if ns != "" {
		full = append(full, "-n", ns)
	}
	full = append(full, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	return json.Unmarshal(out, v)
}

type ipLink struct {
	Name   string   `json:"ifname"`
	Flags  []string `json:"flags"`
	Master string   `json:"master"`
	Kind   string   `json:"-"`
}

func (l ipLink) adminUp() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

// links returns the network devices of ns by name.
func links(ctx context.Context, ns string) (map[string]ipLink, error) {
	var ls []ipLink
	if err := ipJSON(ctx, ns, &ls, "link", "show"); err != nil {
		return nil, err
	}
	m := make(map[string]ipLink, len(ls))
	for _, l := range ls {
		m[l.Name] = l
	}
	return m, nil
}

// namedNetNS lists the named network namespaces (files in /run/netns).
func namedNetNS() (map[string]bool, error) {
	ents, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m, nil
}

// netnsPIDs lists the processes living in namespace ns.
func netnsPIDs(ctx context.Context, ns string) ([]int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
