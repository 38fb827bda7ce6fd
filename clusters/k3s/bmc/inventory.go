// Package bmc powers real servers off and on through their baseboard
// management controllers, for the k3s backend's power-off and destroy
// faults: Redfish (ComputerSystem.Reset) or IPMI (chassis control), from
// an inventory file that maps scenario node names to BMCs. Passwords are
// named in the file (an environment variable or a file), read only when a
// controller is made, and held in a Secret that no log, report or error
// shows.
package bmc

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chaosloop/chaosloop/scenarios"
)

// MaxFileBytes bounds an inventory file: a BMC entry is a few hundred
// bytes, so 1 MiB holds thousands of servers and no more than that is read.
const MaxFileBytes = 1 << 20

// Protocol is how a BMC is spoken to.
type Protocol string

const (
	Redfish Protocol = "redfish"
	IPMI    Protocol = "ipmi"
)

// IPMI interfaces: lanplus is IPMI 2.0 (RMCP+, the default; what current
// BMCs accept), lan is IPMI 1.5 for old ones.
const (
	Lanplus = "lanplus"
	Lan     = "lan"
)

// DefaultIPMIPort is the RMCP port an IPMI address without one uses.
const DefaultIPMIPort = 623

// Inventory is a decoded inventory file. Decoding sets nothing by default:
// the defaults (IPMI port and interface, the Redfish system) are applied
// where they are used, so that what Validate checks is what the file says.
type Inventory struct {
	// File is the inventory's path as given to Load or Parse.
	File string `json:"file,omitempty"`
	BMCs []BMC  `json:"bmcs"`
}

// BMC is one server's management controller. It holds where its password
// is, never the password.
type BMC struct {
	Node     string   `json:"node"`
	Protocol Protocol `json:"protocol"`
	// Address is the Redfish service's URL (https://host[:port]) or the
	// IPMI host[:port].
	Address string `json:"address"`
	// System is the Redfish ComputerSystem: an Id ("1") or its @odata.id
	// ("/redfish/v1/Systems/1"); empty means the BMC's only one.
	System             string `json:"system,omitempty"`
	Username           string `json:"username"`
	PasswordEnv        string `json:"passwordEnv,omitempty"`
	PasswordFile       string `json:"passwordFile,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
	// Interface is the IPMI interface, lanplus (default) or lan.
	Interface string `json:"interface,omitempty"`

	// file names the inventory in errors; dir resolves a relative
	// passwordFile; pos locates the entry ("") and its fields; failed
	// holds the fields (or the entry, "") that could not be decoded, of
	// which validation says nothing more.
	file   string
	dir    string
	pos    map[string]scenarios.Pos
	failed map[string]bool
}

// Load reads and checks an inventory file, reporting every problem in it
// at once as scenarios.Errors (FILE:LINE:COLUMN: message).
func Load(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("BMC inventory: %w", err)
	}
	defer f.Close()
	// One byte past the limit is enough to know the file is too long.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("BMC inventory %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and checks an inventory. file names it in errors and
// anchors a relative passwordFile.
func Parse(file string, data []byte) (*Inventory, error) {
	inv, errs := decode(file, data)
	if inv == nil {
		return nil, errs.Err()
	}
	inv.validate(errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return inv, nil
}

// Validate checks a decoded inventory without changing it.
func (inv *Inventory) Validate() error {
	errs := &problems{}
	inv.validate(errs)
	return errs.Err()
}

// Lookup returns the BMC of a scenario node.
func (inv *Inventory) Lookup(node string) (BMC, bool) {
	for _, b := range inv.BMCs {
		if b.Node == node {
			return b, true
		}
	}
	return BMC{}, false
}

// IPMIInterface is the interface to use: lanplus unless the file says lan.
func (b BMC) IPMIInterface() string {
	if b.Interface == "" {
		return Lanplus
	}
	return b.Interface
}

// HostPort splits an IPMI address, DefaultIPMIPort when it has no port.
func (b BMC) HostPort() (string, int, error) {
	host, port, err := net.SplitHostPort(b.Address)
	if err != nil {
		// No port: the whole address is the host (brackets allowed for IPv6).
		if h := trimBrackets(b.Address); net.ParseIP(h) != nil || validHostname(h) {
			return h, DefaultIPMIPort, nil
		}
		return "", 0, fmt.Errorf("IPMI address %q is not host or host:port", b.Address)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("IPMI address %q: port must be 1-65535", b.Address)
	}
	if host == "" {
		return "", 0, fmt.Errorf("IPMI address %q has no host", b.Address)
	}
	return host, n, nil
}

func trimBrackets(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

// passwordPath is PasswordFile, relative ones taken from the inventory's
// directory (where an operator keeps the two side by side).
func (b BMC) passwordPath() string {
	if b.PasswordFile == "" || filepath.IsAbs(b.PasswordFile) || b.dir == "" {
		return b.PasswordFile
	}
	return filepath.Join(b.dir, b.PasswordFile)
}
