package bmc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// State is a server's power state as its BMC reports it.
type State string

const (
	On  State = "on"
	Off State = "off"
	// Unknown is anything else: a transition under way (Redfish PoweringOn,
	// PoweringOff), Paused, or no answer.
	Unknown State = "unknown"
)

// Controller powers one server. Its calls are idempotent: powering off a
// server that is off succeeds and does nothing. A call returns when the
// BMC has accepted the request; WaitFor tells when the server got there.
type Controller interface {
	// PowerOff cuts power at once, as pulling the plug would (Redfish
	// ForceOff, IPMI chassis power off): the node's OS gets no shutdown.
	PowerOff(ctx context.Context) error
	// PowerOn powers the server on (Redfish On, IPMI chassis power on).
	PowerOn(ctx context.Context) error
	PowerState(ctx context.Context) (State, error)
}

// New makes the controller of b, reading its password now (from the
// environment or the file the inventory names) and, for Redfish, checking
// the credentials and finding the system to control.
func New(ctx context.Context, log *slog.Logger, b BMC) (Controller, error) {
	pw, err := b.password(log)
	if err != nil {
		return nil, err
	}
	log = log.With("node", b.Node, "bmc", b.Address, "protocol", string(b.Protocol))
	switch b.Protocol {
	case Redfish:
		return newRedfish(ctx, log, b, pw)
	case IPMI:
		return newIPMI(ctx, log, b, pw)
	}
	return nil, fmt.Errorf("node %s: protocol %q is not redfish or ipmi", b.Node, b.Protocol)
}

// maxPasswordBytes bounds a password file: a password is short, and a
// wrong path (a log, a disk image) must not be read whole.
const maxPasswordBytes = 4 << 10

// password reads b's password from its source. One trailing newline is
// dropped: files written with echo or an editor end with one.
func (b BMC) password(log *slog.Logger) (Secret, error) {
	if b.PasswordEnv != "" {
		v, ok := os.LookupEnv(b.PasswordEnv)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("node %s: environment variable %s (its BMC's passwordEnv) is not set or empty", b.Node, b.PasswordEnv)
		}
		return NewSecret(v), nil
	}
	path := b.passwordPath()
	if path == "" {
		return Secret{}, fmt.Errorf("node %s: its BMC names no password source (passwordEnv or passwordFile)", b.Node)
	}
	f, err := os.Open(path)
	if err != nil {
		// The *PathError says which file and why; it holds no content.
		return Secret{}, fmt.Errorf("node %s: BMC password file: %w", b.Node, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("BMC password file is readable by other users; chmod 600 it", "node", b.Node, "file", path, "mode", fi.Mode().Perm().String())
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxPasswordBytes+1))
	if err != nil {
		return Secret{}, fmt.Errorf("node %s: BMC password file: %w", b.Node, err)
	}
	if len(buf) > maxPasswordBytes {
		return Secret{}, fmt.Errorf("node %s: BMC password file %s is longer than %d bytes; it should hold the password alone", b.Node, path, maxPasswordBytes)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
	if v == "" {
		return Secret{}, fmt.Errorf("node %s: BMC password file %s is empty", b.Node, path)
	}
	return NewSecret(v), nil
}

// PollEvery is how often WaitFor asks a BMC for the power state: often
// enough that the measured transition is within a poll of the truth, rare
// enough not to load a BMC (they serve a few requests a second).
const PollEvery = 250 * time.Millisecond

// WaitFor polls c until it reports want, and returns how long that took.
// A failing poll is logged and retried (BMCs drop requests while they
// switch power); ctx bounds the wait, and its end returns the last state
// or error seen.
func WaitFor(ctx context.Context, log *slog.Logger, c Controller, want State) (time.Duration, error) {
	start := time.Now()
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	last, lastErr := Unknown, error(nil)
	for {
		s, err := c.PowerState(ctx)
		switch {
		case err == nil && s == want:
			return time.Since(start), nil
		case err != nil && ctx.Err() == nil:
			log.Debug("power state poll failed; retrying", "err", err)
		}
		if err == nil {
			last = s
		}
		lastErr = err
		select {
		case <-ctx.Done():
			err := fmt.Errorf("power state still %s after %s, waiting for %s: %w", last, time.Since(start).Round(time.Millisecond), want, ctx.Err())
			if lastErr != nil && !errors.Is(lastErr, ctx.Err()) {
				err = fmt.Errorf("%w (last poll: %v)", err, lastErr)
			}
			return time.Since(start), err
		case <-tick.C:
		}
	}
}

// passwordSource names where the password came from, for errors.
func (b BMC) passwordSource() string {
	if b.PasswordEnv != "" {
		return "environment variable " + b.PasswordEnv
	}
	return "file " + b.passwordPath()
}
