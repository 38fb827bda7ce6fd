package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// The iptables layout, the same on every node so that any agent (or
// Cleanup) can read it back:
//
//	filter: INPUT, OUTPUT, FORWARD -j CHAOSLOOP-AGENT -j CLA-<id>-<rule>  (isolate: DROP)
//	mangle: POSTROUTING            -j CHAOSLOOP-AGENT -j CLA-<id>-<rule>  (latency: NFQUEUE)
//
// A rule's chain name hashes its id and its content (Rule.chain); the
// chains are the agent's whole state, so an agent that restarts adopts
// what it finds instead of keeping a file.
const (
	baseChain   = "CHAOSLOOP-AGENT"
	chainPrefix = "CLA-"
	// queueBase..queueBase+queueSpan are the NFQUEUE numbers latency
	// rules use: far from the local lab's and other tools' low numbers.
	queueBase = 49152
	queueSpan = 4096
)

// hooks are the built-in chains of table that jump to baseChain.
func hooks(table string) []string {
	if table == "mangle" {
		return []string{"POSTROUTING"}
	}
	return []string{"INPUT", "OUTPUT", "FORWARD"}
}

// tableOf is the table of a rule's chain ("": a freeze, which has none).
func tableOf(k Kind) string {
	switch k {
	case Latency:
		return "mangle"
	case Isolate:
		return "filter"
	}
	return ""
}

// The agent's own connection to the API server passes its isolate rules,
// both ways and on both ends, so that an agent whose node its rules cut
// off the control plane still hears Recover (everything else of the node,
// its kubelet included, is cut). Its sockets carry ExemptMark (SO_MARK:
// the node's end) and DSCP ExemptDSCP (IP_TOS, on the wire: the API
// server's end, another node). An isolate chain saves either on the
// connection as its CONNMARK and lets every packet of a connection so
// marked through, the replies included (see ExemptDialer).
const (
	ExemptMark = 0x100000
	ExemptDSCP = 0x2d
)

var (
	exemptMark = fmt.Sprintf("0x%x/0x%x", ExemptMark, ExemptMark)
	exemptDSCP = fmt.Sprintf("0x%02x", ExemptDSCP)
)

// lines are the iptables arguments (after "-A CHAIN") of r's chain.
func (r Rule) lines(queue uint16) [][]string {
	var out [][]string
	if r.Kind == Isolate {
		out = append(out,
			[]string{"-m", "mark", "--mark", exemptMark, "-j", "CONNMARK", "--set-xmark", exemptMark},
			[]string{"-m", "dscp", "--dscp", exemptDSCP, "-j", "CONNMARK", "--set-xmark", exemptMark},
			[]string{"-m", "connmark", "--mark", exemptMark, "-j", "RETURN"})
	}
	for _, p := range r.Peers {
		switch r.Kind {
		case Isolate:
			out = append(out, []string{"-s", p, "-j", "DROP"}, []string{"-d", p, "-j", "DROP"})
		case Latency:
			out = append(out, []string{"-d", p, "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(queue)), "--queue-bypass"})
		}
	}
	return out
}

// jump is the rule in baseChain that sends packets to r's chain; the
// comment names the rule for whoever reads `iptables -S`.
func jump(id, chain string) []string {
	return []string{"-m", "comment", "--comment", "chaosloop " + id, "-j", chain}
}

// ipt runs iptables in the current network namespace.
type ipt struct{ log *slog.Logger }

func (t ipt) run(ctx context.Context, table string, args ...string) (string, error) {
	argv := append([]string{"-w", "-t", table}, args...)
	out, err := exec.CommandContext(ctx, "iptables", argv...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("iptables %s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// check reports whether a rule exists (iptables -C).
func (t ipt) check(ctx context.Context, table, chain string, args []string) bool {
	_, err := t.run(ctx, table, append([]string{"-C", chain}, args...)...)
	return err == nil
}

// tableState is what a table holds of chaosloop's.
type tableState struct {
	// chains are the rule chains, each with its rules' arguments as
	// `iptables -S` prints them (after "-A CHAIN").
	chains map[string][]string
	// jumps are baseChain's targets, in rule order (rule number = index+1).
	jumps []string
	base  bool
}

func (t ipt) read(ctx context.Context, table string) (tableState, error) {
	out, err := t.run(ctx, table, "-S")
	if err != nil {
		return tableState{}, err
	}
	st := tableState{chains: map[string][]string{}}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch {
		case f[0] == "-N" && f[1] == baseChain:
			st.base = true
		case f[0] == "-N" && strings.HasPrefix(f[1], chainPrefix):
			if _, ok := st.chains[f[1]]; !ok {
				st.chains[f[1]] = nil
			}
		case f[0] == "-A" && f[1] == baseChain:
			target := ""
			if i := slices.Index(f, "-j"); i >= 0 && i+1 < len(f) {
				target = f[i+1]
			}
			st.jumps = append(st.jumps, target)
		case f[0] == "-A" && strings.HasPrefix(f[1], chainPrefix):
			st.chains[f[1]] = append(st.chains[f[1]], strings.Join(f[2:], " "))
		}
	}
	return st, nil
}

// queueOf is the NFQUEUE number a chain's rules use, if any.
func queueOf(lines []string) (uint16, bool) {
	for _, l := range lines {
		f := strings.Fields(l)
		if i := slices.Index(f, "--queue-num"); i >= 0 && i+1 < len(f) {
			if q, err := strconv.ParseUint(f[i+1], 10, 16); err == nil {
				return uint16(q), true
			}
		}
	}
	return 0, false
}

// ensureBase creates baseChain and its hooks in table.
func (t ipt) ensureBase(ctx context.Context, table string, st tableState) error {
	if !st.base {
		if _, err := t.run(ctx, table, "-N", baseChain); err != nil {
			return err
		}
	}
	for _, h := range hooks(table) {
		if t.check(ctx, table, h, []string{"-j", baseChain}) {
			continue
		}
		// first, so that an ACCEPT earlier in the chain cannot bypass it
		if _, err := t.run(ctx, table, "-I", h, "1", "-j", baseChain); err != nil {
			return err
		}
	}
	return nil
}

// fill makes chain hold exactly lines, creating it if need be. A chain
// found complete (an adopted one) is left alone; one that is not (an
// agent killed while filling it) is flushed and filled again. Nothing
// jumps to a chain before it is complete, so the flush opens no gap,
// except in a chain an operator edited by hand.
func (t ipt) fill(ctx context.Context, table, chain string, have []string, exists bool, lines [][]string) error {
	if exists && len(have) == len(lines) {
		ok := true
		for _, l := range lines {
			if !t.check(ctx, table, chain, l) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	op := "-N"
	if exists {
		op = "-F"
	}
	if _, err := t.run(ctx, table, op, chain); err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := t.run(ctx, table, append([]string{"-A", chain}, l...)...); err != nil {
			return err
		}
	}
	return nil
}

// unhook deletes baseChain's jumps at the given rule numbers (1-based).
func (t ipt) unhook(ctx context.Context, table string, nums []int) error {
	slices.Sort(nums)
	var errs []error
	for _, n := range slices.Backward(nums) { // highest first: numbers below stay valid
		if _, err := t.run(ctx, table, "-D", baseChain, strconv.Itoa(n)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t ipt) drop(ctx context.Context, table, chain string) error {
	_, err := t.run(ctx, table, "-F", chain)
	if err == nil {
		_, err = t.run(ctx, table, "-X", chain)
	}
	return err
}

// allocQueue picks a free NFQUEUE number for id: its hash's slot, or the
// next free one.
func allocQueue(id string, used map[uint16]bool) (uint16, error) {
	h := fnv.New32a()
	h.Write([]byte(id))
	start := h.Sum32() % queueSpan
	for i := range uint32(queueSpan) {
		q := uint16(queueBase + (start+i)%queueSpan)
		if !used[q] {
			used[q] = true
			return q, nil
		}
	}
	return 0, errors.New("no free NFQUEUE number")
}

// Cleanup removes every chaosloop chain, and the jumps to them, from the
// current network namespace, and thaws every pod marked frozen in
// stateDir ("": none; cgroups is the node's cgroup root, as for Run): for
// `chaosloop down`, with no agent running (a running one would put its
// rules back). Absent chains are not an error.
func Cleanup(ctx context.Context, log *slog.Logger, cgroups, stateDir string) error {
	t := ipt{log: log}
	var errs []error
	if stateDir != "" {
		errs = append(errs, (&freezer{cgroups: cgroups, state: stateDir}).thawAll())
	}
	for _, table := range []string{"filter", "mangle"} {
		st, err := t.read(ctx, table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, h := range hooks(table) {
			for t.check(ctx, table, h, []string{"-j", baseChain}) {
				if _, err := t.run(ctx, table, "-D", h, "-j", baseChain); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
		if st.base {
			errs = append(errs, t.drop(ctx, table, baseChain))
		}
		for c := range st.chains {
			errs = append(errs, t.drop(ctx, table, c))
		}
		log.Info("agent: cleaned up", "table", table, "chains", len(st.chains))
	}
	return errors.Join(errs...)
}
