package local

import (
	"context"

	"github.com/chaosloop/chaosloop/lab"
	"github.com/chaosloop/chaosloop/scenarios"
)

// Name is the local backend's name, what --on selects.
const Name = "local"

// Provider is the local backend behind the lab seam.
type Provider struct {
	opts Options
}

var (
	_ lab.Provider = (*Provider)(nil)
	_ lab.Lab      = (*Lab)(nil)
)

// NewProvider returns the local backend with opts (Seed drives the random
// choices of its faults).
func NewProvider(opts Options) *Provider { return &Provider{opts: opts.withDefaults()} }

// Options returns the provider's options.
func (p *Provider) Options() Options { return p.opts }

// Name is "local".
func (p *Provider) Name() string { return Name }

// Capabilities: every action on every target the scenario format allows
// it (docs/scenario.md): namespaces, cgroups and signals reach them all.
func (p *Provider) Capabilities() lab.Capabilities {
	const (
		site, rack, feed, node = scenarios.TargetSite, scenarios.TargetRack, scenarios.TargetFeed, scenarios.TargetNode
		sw, link, service      = scenarios.TargetSwitch, scenarios.TargetLink, scenarios.TargetService
	)
	return lab.Capabilities{Actions: map[string][]string{
		scenarios.ActionPowerOff: {node, rack, site, feed},
		scenarios.ActionDestroy:  {node, rack, site},
		scenarios.ActionIsolate:  {node, rack, site, sw, link},
		scenarios.ActionLatency:  {link, node},
		scenarios.ActionKill:     {service},
		scenarios.ActionPause:    {service},
	}}
}

// Up stands sc's lab up (see the package function Up).
func (p *Provider) Up(ctx context.Context, sc *scenarios.Scenario) (lab.Lab, error) {
	l, err := Up(ctx, p.opts, sc)
	if l == nil {
		// A nil *Lab in the interface would not compare equal to nil.
		return nil, err
	}
	return l, err
}

// Open attaches to a lab that is up.
func (p *Provider) Open(ctx context.Context, name string) (lab.Lab, error) {
	l, err := Open(ctx, p.opts, name)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// List names the labs with state under the state directory.
func (p *Provider) List(ctx context.Context) ([]string, error) { return List(p.opts) }

// Down removes a lab by name, also after a crash.
func (p *Provider) Down(ctx context.Context, name string) error {
	return DownByName(ctx, p.opts, name)
}
