package bmctest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// InstallIPMISim installs Debian's openipmi, which has ipmi_sim.
func InstallIPMISim(ctx context.Context, log *slog.Logger) error {
	return install.Apt(ctx, log, "openipmi")
}

// IPMISimOptions shape an ipmi_sim's chassis.
type IPMISimOptions struct {
	// PowerOff and PowerOn are shell commands run when a client turns the
	// chassis off or on, before the new state is recorded; one that fails
	// fails the client's request. Empty: the chassis only records it.
	PowerOff, PowerOn string
	// Container makes the chassis that docker container (StartContainer):
	// its power is on while the container runs, power-off SIGKILLs it and
	// power-on starts it. Not with PowerOff or PowerOn.
	Container string
}

// StartIPMISim runs ipmi_sim on a free loopback UDP port with one
// administrator, user and password, over lan and lanplus. Its chassis is
// on at the start.
func StartIPMISim(tb testing.TB, user, password string, opt IPMISimOptions) *Server {
	tb.Helper()
	require(tb, InstallIPMISim, "ipmi_sim")
	dir := workDir(tb, "ipmi_sim")
	port := freePort(tb, "udp")
	var power string
	switch {
	case opt.Container != "" && (opt.PowerOff != "" || opt.PowerOn != ""):
		tb.Fatal("bmctest: IPMISimOptions.Container with PowerOff or PowerOn")
	case opt.Container != "":
		power = dockerPower(tb, opt.Container)
	default:
		// The power state is kept in a file (absent: on).
		power = fmt.Sprintf(`state=%q
power() { cat "$state" 2>/dev/null || echo 1; }
power_off() { { %s; } && echo 0 > "$state"; }
power_on() { { %s; } && echo 1 > "$state"; }
`, filepath.Join(dir, "power"), orTrue(opt.PowerOff), orTrue(opt.PowerOn))
	}
	chassis := writeChassis(tb, filepath.Join(dir, "chassis"), power)
	writeFile(tb, filepath.Join(dir, "lan.conf"), lanConf(port, user, password, chassis))
	// The BMC itself (management controller 0x20), enabled.
	writeFile(tb, filepath.Join(dir, "bmc.emu"), "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
		tb.Fatal(err)
	}
	// -n: no console on stdin, which a test does not have.
	s := start(tb, dir, "ipmi_sim", "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "bmc.emu"), "-s", filepath.Join(dir, "state"))
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.waitUntil(tb, func() bool { return udpBound(port) })
	return s
}

// lanConf is ipmi_sim's configuration (ipmi_lan(5)): a LAN channel on
// loopback that takes straight and MD5 auth (lan) and RMCP+ (lanplus),
// and chassis power control through the chassis program.
func lanConf(port int, user, password, chassis string) string {
	var b strings.Builder
	b.WriteString("name \"chaosloop-bmctest\"\nset_working_mc 0x20\n  startlan 1\n")
	fmt.Fprintf(&b, "    addr 127.0.0.1 %d\n    priv_limit admin\n", port)
	for _, p := range []string{"callback", "user", "operator", "admin"} {
		fmt.Fprintf(&b, "    allowed_auths_%s md5 straight\n", p)
	}
	b.WriteString("    guid a123456789abcdefa123456789abcdef\n  endlan\n")
	// Without a chassis_control program ipmi_sim answers chassis power
	// control with "invalid data field" (0xcc).
	fmt.Fprintf(&b, "  chassis_control \"%s 0x20\"\n", chassis)
	fmt.Fprintf(&b, "  user 2 true %q %q admin 10 md5 straight\n", user, password)
	return b.String()
}

// writeChassis writes path, a chassis_control program (ipmi_lan(5)),
// called as "PROG MC get PARM..." (it prints PARM:VALUE for each) and
// "PROG MC set PARM VALUE...", power being 1 or 0; the sushy-tools driver
// of sushyDriver calls it the same way. power defines the shell functions
// power (prints 1 or 0), power_off and power_on, whose failure fails the
// request. Each power set is logged to path.log.
func writeChassis(tb testing.TB, path, power string) string {
	tb.Helper()
	script := fmt.Sprintf(`#!/bin/sh
%slog=%q
shift
op=$1; shift
case $op in
get)
	for p in "$@"; do
		case $p in
		power) v=$(power) || exit 1; echo "power:$v" ;;
		boot) echo "boot:default" ;;
		*) echo "invalid parameter: $p"; exit 1 ;;
		esac
	done ;;
set)
	while [ $# -ge 2 ]; do
		if [ "$1" = power ]; then
			if [ "$2" = 0 ]; then f=power_off; else f=power_on; fi
			if $f; then r=ok; else r=failed; fi
			echo "$(date -u +%%T.%%N) set power $2: $r" >> "$log"
			[ $r = ok ] || exit 1
		fi
		shift 2
	done ;;
*) echo "unknown operation: $op"; exit 1 ;;
esac
`, power, path+".log")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}

func orTrue(cmd string) string {
	if cmd == "" {
		return "true"
	}
	return cmd
}

// udpBound reports whether something is bound to 127.0.0.1:port (UDP),
// from /proc/net/udp: ipmi_sim answers nothing without a session.
func udpBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	return strings.Contains(string(b), fmt.Sprintf(" 0100007F:%04X ", port))
}
