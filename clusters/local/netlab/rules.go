package netlab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Queue is an NFQUEUE that a userspace delayer must consume, inside NetNS
// (queues are per namespace).
type Queue struct {
	NetNS string `json:"netns"`
	Num   uint16 `json:"num"`
}

// firstQueue leaves low numbers to anything else on the machine.
const firstQueue = 100

// LatencyRules sends the traffic of a link (both directions, at each
// router's egress onto it) or of a node (everything in and out of it but
// loopback) to an NFQUEUE, and returns the queues to delay. With
// --queue-bypass, traffic flows undelayed while no delayer listens.
// Calling it again for the same target returns the same queues.
func (l *Lab) LatencyRules(ctx context.Context, t scenarios.Target) ([]Queue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := "latency " + t.String()
	if i := l.ruleSet(key); i >= 0 {
		return queuesOf(l.st.Rules[i]), nil
	}
	if l.st.NextQueue < firstQueue {
		l.st.NextQueue = firstQueue
	}
	q := l.st.NextQueue
	if q > 65535 {
		return nil, errors.New("netlab: out of NFQUEUE numbers")
	}
	jump := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(q), "--queue-bypass"}
	rules, err := l.rulesFor(t, "mangle", "POSTROUTING", "OUTPUT", "PREROUTING", key, jump)
	if err != nil {
		return nil, err
	}
	l.st.NextQueue++
	rs := RuleSet{Key: key, Queue: q, Rules: rules}
	if err := l.addRuleSet(ctx, rs); err != nil {
		return nil, err
	}
	return queuesOf(rs), nil
}

// RemoveLatencyRules removes what LatencyRules installed for t.
func (l *Lab) RemoveLatencyRules(ctx context.Context, t scenarios.Target) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeRuleSet(ctx, "latency "+t.String())
}

// LossRules drops each packet of a link or node (each way) with
// probability p, replacing an earlier loss rule of the same target.
func (l *Lab) LossRules(ctx context.Context, t scenarios.Target, p float64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p <= 0 || p > 1 {
		return fmt.Errorf("netlab: loss probability %v not in (0, 1]", p)
	}
	key := "loss " + t.String()
	if i := l.ruleSet(key); i >= 0 {
		if l.st.Rules[i].Probability == p {
			return nil
		}
		if err := l.removeRuleSet(ctx, key); err != nil {
			return err
		}
	}
	drop := []string{"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(p, 'f', -1, 64), "-j", "DROP"}
	rules, err := l.rulesFor(t, "filter", "FORWARD", "OUTPUT", "INPUT", key, drop)
	if err != nil {
		return err
	}
	return l.addRuleSet(ctx, RuleSet{Key: key, Probability: p, Rules: rules})
}

// RemoveLossRules removes what LossRules installed for t.
func (l *Lab) RemoveLossRules(ctx context.Context, t scenarios.Target) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeRuleSet(ctx, "loss "+t.String())
}

func queuesOf(rs RuleSet) []Queue {
	var qs []Queue
	for _, r := range rs.Rules {
		q := Queue{NetNS: r.NetNS, Num: uint16(rs.Queue)}
		if !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	return qs
}

// rulesFor places rules for a target: on a link, at both routers on their
// device onto it (routerChain: the chain forwarded traffic leaves by); on a
// node, in its namespace on outChain and inChain, sparing loopback.
func (l *Lab) rulesFor(t scenarios.Target, table, routerChain, outChain, inChain, key string, action []string) ([]Rule, error) {
	p := &l.st.Plan
	comment := []string{"-m", "comment", "--comment", "chaosloop " + key}
	switch t.Kind {
	case scenarios.TargetLink:
		lk, ok := p.link(t.A, t.B)
		if !ok {
			return nil, fmt.Errorf("netlab: %s is not in lab %s", t, p.Lab)
		}
		var rules []Rule
		for _, site := range []string{lk.A, lk.B} {
			r, _ := p.router(site)
			spec := append(append([]string{"-o", lk.Dev}, comment...), action...)
			rules = append(rules, Rule{NetNS: r.NetNS, Table: table, Chain: routerChain, Spec: spec})
		}
		return rules, nil
	case scenarios.TargetNode:
		h, ok := p.host(t.Name)
		if !ok {
			return nil, fmt.Errorf("netlab: %s is not in lab %s", t, p.Lab)
		}
		return []Rule{
			{NetNS: h.NetNS, Table: table, Chain: outChain, Spec: append(append([]string{"!", "-o", "lo"}, comment...), action...)},
			{NetNS: h.NetNS, Table: table, Chain: inChain, Spec: append(append([]string{"!", "-i", "lo"}, comment...), action...)},
		}, nil
	}
	return nil, fmt.Errorf("netlab: latency and loss take a link or node target, not %s", t)
}

func (l *Lab) ruleSet(key string) int {
	return slices.IndexFunc(l.st.Rules, func(rs RuleSet) bool { return rs.Key == key })
}

// addRuleSet records then installs a rule set (recording first, so a
// crash in between still lets Down find the namespaces; namespaces going
// away take their rules with them).
func (l *Lab) addRuleSet(ctx context.Context, rs RuleSet) error {
	l.st.Rules = append(l.st.Rules, rs)
	if err := l.st.write(); err != nil {
		return err
	}
	for _, r := range rs.Rules {
		if err := ensureRule(ctx, r, true); err != nil {
			return err
		}
	}
	l.log.Info("iptables rules added", "lab", l.st.Plan.Lab, "key", rs.Key)
	return nil
}

func (l *Lab) removeRuleSet(ctx context.Context, key string) error {
	i := l.ruleSet(key)
	if i < 0 {
		return nil
	}
	for _, r := range l.st.Rules[i].Rules {
		if err := ensureRule(ctx, r, false); err != nil {
			return err
		}
	}
	l.st.Rules = slices.Delete(l.st.Rules, i, i+1)
	if err := l.st.write(); err != nil {
		return err
	}
	l.log.Info("iptables rules removed", "lab", l.st.Plan.Lab, "key", key)
	return nil
}

// repairRules reinstalls recorded rules that are missing (after Up on an
// existing lab).
func (l *Lab) repairRules(ctx context.Context) error {
	for _, rs := range l.st.Rules {
		for _, r := range rs.Rules {
			if err := ensureRule(ctx, r, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureRule makes a rule present or absent, checking first (-C) so that
// both directions are idempotent.
func ensureRule(ctx context.Context, r Rule, present bool) error {
	run := func(op string) ([]byte, error) {
		args := append([]string{"netns", "exec", r.NetNS, "iptables", "-w", "5", "-t", r.Table, op, r.Chain}, r.Spec...)
		return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	}
	_, err := run("-C")
	var ee *exec.ExitError
	exists := err == nil
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return fmt.Errorf("iptables -C in %s: %w", r.NetNS, err)
	}
	if exists == present {
		return nil
	}
	op := "-A"
	if !present {
		op = "-D"
	}
	if out, err := run(op); err != nil {
		return fmt.Errorf("iptables %s %s %s in %s: %v: %s", op, r.Chain, strings.Join(r.Spec, " "), r.NetNS, err, strings.TrimSpace(string(out)))
	}
	return nil
}
