package lab

import (
	"context"
	"errors"
	"net"
	"os"
)

// Status is a lab as observed now.
type Status struct {
	Name string `json:"name"`
	// Dir is where the backend keeps the lab's state.
	Dir      string          `json:"stateDir"`
	Hosts    int             `json:"hosts"`
	Faults   []Injected      `json:"faults"`
	Services []ServiceStatus `json:"services"`
}

// ServiceStatus is one service as observed now.
type ServiceStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Engine  string `json:"engine"`
	Version string `json:"version,omitempty"`
	// Substitute names what stands in for the scenario's kind when it is not
	// the real thing (mongodb: FerretDB over Patroni/PostgreSQL).
	Substitute string   `json:"substitute,omitempty"`
	Writable   bool     `json:"writable"`
	Healthy    bool     `json:"healthy"`
	Members    []Member `json:"members"`
	Error      string   `json:"error,omitempty"`
	// TimedOut: the engine's status as a whole ran out of time.
	TimedOut bool `json:"timedOut,omitempty"`
}

// Member is one member of a service as observed now.
type Member struct {
	Index   int    `json:"index"`
	Name    string `json:"name"`
	Node    string `json:"node"`
	Addr    string `json:"addr"`
	Role    string `json:"role,omitempty"`
	Up      bool   `json:"up"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	// TimedOut: the member runs but its probe ran out of time, which is no
	// evidence of its state: it is neither Up nor Healthy.
	TimedOut bool `json:"timedOut,omitempty"`
}

// Conn is a connection a dialer opened.
type Conn = net.Conn

// DialFunc opens a connection, like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// IsTimeout reports whether err is a probe running out of time (a context
// deadline or a network timeout), as opposed to an answer or a refusal.
func IsTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
