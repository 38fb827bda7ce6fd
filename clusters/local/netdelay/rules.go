package netdelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// IptablesPackage is the Debian 12 package (pinned) that provides the
// NFQUEUE target.
const IptablesPackage = "iptables=1.8.9-2"

// Install installs what the rules need (iptables).
func Install(ctx context.Context, log *slog.Logger) error {
	return install.Apt(ctx, log, IptablesPackage)
}

// Rule sends the packets that Match selects in a chain of the mangle table
// to a delayer's queue. --queue-bypass makes them flow undelayed whenever
// no delayer is bound.
type Rule struct {
	// Chain of the mangle table: POSTROUTING sees both forwarded and
	// locally sent packets, so it covers links of routers and hosts alike.
	Chain string
	// Match is iptables match arguments, e.g. {"-o", "veth1"}.
	Match []string
	Queue uint16
}

// EgressRule delays every packet leaving through iface.
func EgressRule(iface string, queue uint16) Rule {
	return Rule{Chain: "POSTROUTING", Match: []string{"-o", iface}, Queue: queue}
}

// NodeRule delays every packet a namespace sends or forwards, except on
// loopback (traffic between the node's own processes is not on a link).
func NodeRule(queue uint16) Rule {
	return Rule{Chain: "POSTROUTING", Match: []string{"!", "-o", "lo"}, Queue: queue}
}

// Args returns the iptables arguments for op: "-A" (append), "-C"
// (check) or "-D" (delete).
func (r Rule) Args(op string) []string {
	args := []string{"-w", "-t", "mangle", op, r.Chain}
	args = append(args, r.Match...)
	return append(args, "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(r.Queue)), "--queue-bypass")
}

// AddRules appends rules in the named network namespace ("" = the current
// one). If one fails, those already added are removed again.
func AddRules(ctx context.Context, log *slog.Logger, netns string, rules ...Rule) error {
	for i, r := range rules {
		if err := iptables(ctx, netns, r.Args("-A")); err != nil {
			return errors.Join(err, DeleteRules(ctx, log, netns, rules[:i]...))
		}
		log.Debug("netdelay: rule added", "netns", netns, "rule", strings.Join(r.Args("-A"), " "))
	}
	return nil
}

// DeleteRules deletes rules from the named network namespace; rules that
// are not there are skipped, so it can run in any cleanup.
func DeleteRules(ctx context.Context, log *slog.Logger, netns string, rules ...Rule) error {
	var errs []error
	for _, r := range rules {
		if iptables(ctx, netns, r.Args("-C")) != nil {
			continue // absent (or the namespace is gone)
		}
		if err := iptables(ctx, netns, r.Args("-D")); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Debug("netdelay: rule deleted", "netns", netns, "rule", strings.Join(r.Args("-D"), " "))
	}
	return errors.Join(errs...)
}

func iptables(ctx context.Context, netns string, args []string) error {
	name, argv := "iptables", args
	if netns != "" {
		name, argv = "ip", append([]string{"netns", "exec", netns, "iptables"}, args...)
	}
	out, err := exec.CommandContext(ctx, name, argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
