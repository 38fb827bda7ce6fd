package bmctest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// SushyVersion is the sushy-tools release the Redfish tests run.
const SushyVersion = "2.2.0"

// SushyVenv is the virtualenv sushy-tools is installed in: a cache kept
// across runs, one directory a version.
var SushyVenv = "/var/cache/chaosloop/sushy-tools/" + SushyVersion

// SushyEmulator is the emulator's executable in SushyVenv.
func SushyEmulator() string { return filepath.Join(SushyVenv, "bin", "sushy-emulator") }

var sushyMu sync.Mutex

// InstallSushy puts sushy-tools in SushyVenv unless it is there: Debian's
// python3-venv, then pip from PyPI. A venv's scripts name its path, so it
// is made in place, and a marker written last says it is complete: a
// failed install is removed and redone by the next run.
func InstallSushy(ctx context.Context, log *slog.Logger) error {
	sushyMu.Lock()
	defer sushyMu.Unlock()
	done := filepath.Join(SushyVenv, ".installed")
	_, errDone := os.Stat(done)
	// Stat follows the venv's python link: a venv whose interpreter went
	// away is made again.
	_, errPython := os.Stat(filepath.Join(SushyVenv, "bin", "python3"))
	if errDone == nil && errPython == nil {
		return nil
	}
	if err := install.Apt(ctx, log, "python3", "python3-venv"); err != nil {
		return err
	}
	log.Info("installing sushy-tools from PyPI", "version", SushyVersion, "venv", SushyVenv)
	install.Step(ctx, "pip install sushy-tools=="+SushyVersion)
	_ = os.RemoveAll(SushyVenv)
	steps := [][]string{
		// Debian's python3, which python3-venv serves, not whichever
		// python3 comes first in PATH (a pyenv shim on developer machines).
		{"/usr/bin/python3", "-m", "venv", SushyVenv},
		{filepath.Join(SushyVenv, "bin", "pip"), "install", "--disable-pip-version-check", "--quiet", "sushy-tools==" + SushyVersion},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, install.Tail(out))
		}
	}
	return os.WriteFile(done, nil, 0o644)
}

// FakeSystem is a system of the emulator's fake driver.
type FakeSystem struct {
	UUID, Name string
	On         bool
	// Container makes the system's power that docker container's
	// (StartContainer), through sushyDriver: on while it runs, ForceOff
	// SIGKILLs it, On starts it. On is then ignored.
	Container string
}

// StartSushy runs sushy-emulator with the fake driver on a free loopback
// port, serving systems behind HTTP basic auth for user and password.
func StartSushy(tb testing.TB, user, password string, systems ...FakeSystem) *Server {
	tb.Helper()
	require(tb, InstallSushy, SushyEmulator())
	dir := workDir(tb, "sushy")
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	port := freePort(tb, "tcp")
	writeFile(tb, filepath.Join(dir, "htpasswd"), user+":"+string(hash)+"\n")
	chassis := map[string]string{}
	for _, sys := range systems {
		if sys.Container != "" {
			chassis[sys.UUID] = writeChassis(tb, filepath.Join(dir, "chassis-"+sys.UUID), dockerPower(tb, sys.Container))
		}
	}
	writeFile(tb, filepath.Join(dir, "emulator.conf"), sushyConfig(dir, port, systems, chassis))
	s := start(tb, dir, SushyEmulator(), "--config", filepath.Join(dir, "emulator.conf"))
	s.Addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	// The service root answers without credentials once Flask is up.
	s.waitUntil(tb, func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(s.Addr + "/redfish/v1")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// sushyConfig is the emulator's Python config file: the fake driver (its
// systems take 1-11 s, at random, to reach a requested power state), the
// state in dir rather than the shared /tmp/sushy-emulator, basic auth.
// With chassis programs (by system UUID), sushyDriver too.
func sushyConfig(dir string, port int, systems []FakeSystem, chassis map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = %d\n", port)
	fmt.Fprintf(&b, "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = %q\n", filepath.Join(dir, "state"))
	fmt.Fprintf(&b, "SUSHY_EMULATOR_AUTH_FILE = %q\nSUSHY_EMULATOR_FAKE_SYSTEMS = [\n", filepath.Join(dir, "htpasswd"))
	for _, s := range systems {
		state := "Off"
		if s.On {
			state = "On"
		}
		fmt.Fprintf(&b, "  {'uuid': %q, 'name': %q, 'power_state': %q, 'nics': []},\n", s.UUID, s.Name, state)
	}
	b.WriteString("]\n")
	if len(chassis) > 0 {
		b.WriteString("CHAOSLOOP_CHASSIS = {\n")
		for uuid, prog := range chassis {
			fmt.Fprintf(&b, "  %q: %q,\n", uuid, prog)
		}
		b.WriteString("}\n" + sushyDriver)
	}
	return b.String()
}

// sushyDriver, Python in the config file, powers the systems named in
// CHAOSLOOP_CHASSIS through their chassis program (writeChassis: the one
// ipmi_sim runs): PowerState is what "get power" says, ForceOff is "set
// power 0" and On "set power 1", done before the Reset is answered, and a
// failure is the Reset's (HTTP 500). Every other system, and everything
// but power, is the fake driver's. sushy-tools 2.2.0 has no setting for a
// driver class: it builds fakedriver.FakeDriver at the first request, after
// reading this file, so the file puts its subclass there.
const sushyDriver = `
import subprocess
from sushy_tools import error
from sushy_tools.emulator.resources.systems import fakedriver

class ChassisDriver(fakedriver.FakeDriver):
    def _prog(self, identity):
        return self._config['CHAOSLOOP_CHASSIS'].get(self.uuid(identity))

    def _run(self, prog, *args):
        r = subprocess.run([prog, 'sushy', *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise error.FishyError(f'{prog} {" ".join(args)}: exit {r.returncode}: {r.stdout}{r.stderr}')
        return r.stdout.strip()

    def get_power_state(self, identity):
        prog = self._prog(identity)
        if prog is None:
            return super().get_power_state(identity)
        out = self._run(prog, 'get', 'power')
        if out not in ('power:1', 'power:0'):
            raise error.FishyError(f'{prog} get power: {out}')
        return 'On' if out == 'power:1' else 'Off'

    def set_power_state(self, identity, state):
        prog = self._prog(identity)
        if prog is None:
            return super().set_power_state(identity, state)
        power = {'On': '1', 'ForceOn': '1', 'ForceOff': '0'}.get(state)
        if power is None:
            raise error.NotSupportedError(f'Power state {state} is not supported')
        self._run(prog, 'set', 'power', power)

fakedriver.FakeDriver = ChassisDriver
`

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}
