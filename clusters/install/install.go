// Package install puts on the host what a backend needs before it can
// start anything — Debian packages, builds from the module proxy — and
// carries the steps of those long installs to whoever shows progress.
package install

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// aptMu serialises apt-get: dpkg allows one run at a time.
var aptMu sync.Mutex

// Apt installs Debian packages that are missing ("name" or
// "name=version"), running apt-get update first when a package is unknown.
func Apt(ctx context.Context, log *slog.Logger, pkgs ...string) error {
	aptMu.Lock()
	defer aptMu.Unlock()
	var missing []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", name).Output()
		if err != nil || !bytes.Contains(out, []byte("install ok installed")) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("installing %s needs root", strings.Join(missing, " "))
	}
	log.Info("installing Debian packages", "packages", missing)
	Step(ctx, "apt-get install "+strings.Join(missing, " "))
	install := func() ([]byte, error) {
		args := append([]string{"install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}, missing...)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return nil
	}
	Step(ctx, "apt-get update (a package was not in the lists)")
	if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v\n%s", err, Tail(out))
	}
	if out, err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %v\n%s", strings.Join(missing, " "), err, Tail(out))
	}
	return nil
}

// Tail is the last lines of a command's output, for an error message.
func Tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

type stepKey struct{}

// WithSteps returns a context whose installs report their steps (an
// apt-get, a Maven download, a build) to fn, as net/http/httptrace carries
// its hooks: Install methods keep their signature, and a caller that wants
// no progress passes nothing.
func WithSteps(ctx context.Context, fn func(detail string)) context.Context {
	return context.WithValue(ctx, stepKey{}, fn)
}

// Step reports one step of a long install to the function WithSteps set
// on ctx, if any.
func Step(ctx context.Context, detail string) {
	if fn, ok := ctx.Value(stepKey{}).(func(string)); ok && fn != nil {
		fn(detail)
	}
}
