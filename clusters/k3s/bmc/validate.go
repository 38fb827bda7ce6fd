package bmc

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/chaosloop/chaosloop/scenarios"
)

// dnsLabel is an RFC 1123 label, as scenario node names are.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// envName is a POSIX environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// systemPath is a ComputerSystem's @odata.id; a bare Id has no slash.
var systemPath = regexp.MustCompile(`^/redfish/v1/Systems/[^/]+/?$`)

// validate adds every problem of the inventory to errs. It only reads inv.
func (inv *Inventory) validate(errs *problems) {
	if errs.File == "" {
		errs.File = inv.File
	}
	if len(inv.BMCs) == 0 && len(errs.List) == 0 {
		errs.Add(scenarios.Pos{Line: 1, Column: 1}, "the inventory lists no BMCs: add a bmcs list with one entry a node")
	}
	first := map[string]scenarios.Pos{}
	for i, b := range inv.BMCs {
		path := fmt.Sprintf("bmcs[%d]", i)
		b.validate(errs, path)
		if b.Node == "" {
			continue
		}
		if at, dup := first[b.Node]; dup {
			errs.Add(b.at("node"), "%s: node %q already has a BMC (line %d); a node has one", path, b.Node, at.Line)
			continue
		}
		first[b.Node] = b.at("node")
	}
}

// at is where a field's value is, else the entry.
func (b BMC) at(field string) scenarios.Pos {
	if p, ok := b.pos[field]; ok {
		return p
	}
	return b.pos[""]
}

func (b BMC) validate(errs *problems, path string) {
	if b.failed[""] {
		return
	}
	need := func(field, v string) bool {
		if v == "" && !b.failed[field] {
			errs.Add(b.at(field), "%s: %s is missing", path, field)
		}
		return v != ""
	}
	if need("node", b.Node) && !dnsLabel.MatchString(b.Node) {
		errs.Add(b.at("node"), "%s: node %q is not a scenario node name (a DNS-1123 label: lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)", path, b.Node)
	}
	need("username", b.Username)
	b.validatePassword(errs, path)
	if !need("protocol", string(b.Protocol)) {
		return
	}
	switch b.Protocol {
	case Redfish:
		b.validateRedfish(errs, path)
	case IPMI:
		b.validateIPMI(errs, path)
	default:
		errs.Add(b.at("protocol"), "%s: protocol %q is not redfish or ipmi", path, b.Protocol)
	}
}

// validatePassword wants exactly one source. Neither value is quoted in a
// message: a password put there by mistake must not be echoed.
func (b BMC) validatePassword(errs *problems, path string) {
	switch {
	case b.PasswordEnv != "" && b.PasswordFile != "":
		errs.Add(b.at("passwordFile"), "%s: passwordEnv and passwordFile are both given; name one source of the password", path)
	case b.PasswordEnv == "" && b.PasswordFile == "" && !b.failed["passwordEnv"] && !b.failed["passwordFile"]:
		errs.Add(b.pos[""], "%s: the password's source is missing: give passwordEnv (an environment variable) or passwordFile (a file)", path)
	case b.PasswordEnv != "" && !envName.MatchString(b.PasswordEnv):
		errs.Add(b.at("passwordEnv"), "%s: passwordEnv must be an environment variable's name (letters, digits and '_', not starting with a digit), not the password", path)
	}
}

func (b BMC) validateRedfish(errs *problems, path string) {
	if b.Interface != "" {
		errs.Add(b.at("interface"), "%s: interface is for IPMI BMCs; a Redfish BMC has none", path)
	}
	if b.System != "" && strings.Contains(b.System, "/") && !systemPath.MatchString(b.System) {
		errs.Add(b.at("system"), "%s: system %q is neither a system Id nor a path /redfish/v1/Systems/ID", path, b.System)
	}
	if b.Address == "" {
		if b.failed["address"] {
			return
		}
		errs.Add(b.at("address"), "%s: address is missing (the Redfish service's URL, https://HOST[:PORT])", path)
		return
	}
	u, err := url.Parse(b.Address)
	switch {
	case err == nil && u.User != nil, strings.Contains(b.Address, "@"):
		// Not quoted: what precedes '@' may be a password.
		errs.Add(b.at("address"), "%s: address may not hold credentials; use username and passwordEnv or passwordFile", path)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		errs.Add(b.at("address"), "%s: address %q is not a Redfish URL (https://HOST[:PORT])", path, b.Address)
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		errs.Add(b.at("address"), "%s: address %q must be the service's root (https://HOST[:PORT]), without a path; /redfish/v1 is added", path, b.Address)
	case b.InsecureSkipVerify && u.Scheme == "http":
		errs.Add(b.at("insecureSkipVerify"), "%s: insecureSkipVerify is for https addresses; %s has no certificate to check", path, b.Address)
	}
}

func (b BMC) validateIPMI(errs *problems, path string) {
	if b.System != "" {
		errs.Add(b.at("system"), "%s: system is for Redfish BMCs; an IPMI BMC controls one chassis", path)
	}
	if b.InsecureSkipVerify {
		errs.Add(b.at("insecureSkipVerify"), "%s: insecureSkipVerify is for Redfish over https; IPMI has no certificates", path)
	}
	if b.Interface != "" && b.Interface != Lanplus && b.Interface != Lan {
		errs.Add(b.at("interface"), "%s: interface %q is not lanplus (IPMI 2.0, the default) or lan (IPMI 1.5)", path, b.Interface)
	}
	if len(b.Username) > 16 {
		errs.Add(b.at("username"), "%s: an IPMI username is at most 16 bytes", path)
	}
	if b.Address == "" {
		if b.failed["address"] {
			return
		}
		errs.Add(b.at("address"), "%s: address is missing (the BMC's HOST or HOST:PORT; the port defaults to %d)", path, DefaultIPMIPort)
		return
	}
	if _, _, err := b.HostPort(); err != nil {
		errs.Add(b.at("address"), "%s: %v", path, err)
	}
}

// validHostname is a DNS name of labels (any case).
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !dnsLabel.MatchString(strings.ToLower(l)) {
			return false
		}
	}
	return true
}
