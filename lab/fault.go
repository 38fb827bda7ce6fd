package lab

import "time"

// Fault is one fault to inject: what a scenario's faults: entry asks for,
// with a concrete target. Member-level targets (service/NAME) name a
// member index or "leader".
type Fault struct {
	Action string        `json:"action"`
	Target string        `json:"target"`
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	Loss   float64       `json:"loss,omitempty"`
}

// Key identifies a fault: injecting the same key twice is one fault.
func (f Fault) Key() string { return f.Action + " " + f.Target }

// Injected is a fault in place, as a lab records it until it is recovered.
type Injected struct {
	Fault
	// Member is the member a service target resolved to.
	Member int       `json:"member,omitempty"`
	Since  time.Time `json:"since"`
}
