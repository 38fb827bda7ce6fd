package bmc

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// redacted is what every rendering of a Secret shows.
const redacted = "[redacted]"

// Secret is a BMC password. Every way Go has of showing a value — fmt with
// any verb, %#v, JSON, text marshalling, slog — shows "[redacted]", so a
// controller or an error that carries one can be logged or put in a report
// without leaking it. Only reveal gives the value, to the protocol client.
type Secret struct{ value string }

// NewSecret wraps a password.
func NewSecret(s string) Secret { return Secret{value: s} }

func (Secret) String() string                { return redacted }
func (Secret) GoString() string              { return "bmc.Secret(" + redacted + ")" }
func (Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (Secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// Empty reports whether the secret has no value.
func (s Secret) Empty() bool { return s.value == "" }

func (s Secret) reveal() string { return s.value }

// scrub keeps the secret out of an error from a protocol library, whose
// messages may quote what the BMC answered: an error whose text holds the
// password is replaced by one with it redacted, and no longer unwraps (the
// original would still hold it).
func (s Secret) scrub(err error) error {
	if err == nil || s.value == "" || !strings.Contains(err.Error(), s.value) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.value, redacted))
}
