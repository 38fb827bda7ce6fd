// Package nodelabels are the Kubernetes labels a scenario node carries on
// every Kubernetes backend: the well-known topology labels (so that
// topologySpreadConstraints and the adopter's own tooling see sites and
// racks) and chaosloop's own (site, rack, feeds, switches, pools). Both the
// kind backend, which creates its nodes labelled, and the k3s backend,
// which labels the adopter's nodes, use it, so the two never disagree.
package nodelabels

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/chaosloop/chaosloop/topology"
)

// Label keys of a node. Feeds, switches and pools are one key each,
// valued "true": a rack has several of each. Pool names are upper case
// ([A-Z0-9-]); their keys hold them in lower case
// (pool.chaosloop.io/k3s-control-plane), Kubernetes' convention —
// upper-casing the key's name gives the pool back.
const (
	Region       = "topology.kubernetes.io/region"
	Zone         = "topology.kubernetes.io/zone"
	Site         = "chaosloop.io/site"
	Rack         = "chaosloop.io/rack"
	FeedPrefix   = "feed.chaosloop.io/"
	SwitchPrefix = "switch.chaosloop.io/"
	PoolPrefix   = "pool.chaosloop.io/"
	// maxValue is the longest a label value may be.
	maxValue = 63
)

// For is a scenario node's labels: its site as the region, its site and
// rack as the zone (rack names repeat across sites), and chaosloop's for
// its site, rack, feeds, switches and pools.
func For(n *topology.Node) map[string]string {
	site, rack := n.Site().Name, n.Rack.Name
	l := map[string]string{
		Region: site,
		Zone:   ZoneOf(site, rack),
		Site:   site,
		Rack:   rack,
	}
	for _, f := range n.Rack.Feeds {
		l[FeedPrefix+f.Name] = "true"
	}
	for _, s := range n.Rack.Switches {
		l[SwitchPrefix+s.Name] = "true"
	}
	for _, pool := range n.Pools {
		l[PoolKey(pool)] = "true"
	}
	return l
}

// PoolKey is the label key of a pool.
func PoolKey(pool string) string { return PoolPrefix + strings.ToLower(pool) }

// ZoneOf is SITE-RACK, or when longer than a label value may be, its start
// and a hash of the whole.
func ZoneOf(site, rack string) string {
	z := site + "-" + rack
	if len(z) <= maxValue {
		return z
	}
	sum := sha256.Sum256([]byte(z))
	return strings.TrimRight(z[:maxValue-9], "-") + "-" + hex.EncodeToString(sum[:4])
}

// Owned reports whether key is one chaosloop sets, and so may change or
// remove on a node: its own keys and the two topology keys. Every other
// label on a node is the adopter's and is never touched.
func Owned(key string) bool {
	switch key {
	case Region, Zone, Site, Rack:
		return true
	}
	return Removable(key)
}

// Removable reports whether key is one chaosloop removes from a node that
// no longer carries it (a feed, switch or pool the scenario dropped): the
// keys under chaosloop's prefixes, which nothing else writes. The single-
// valued keys are always set, so they are changed, never removed.
func Removable(key string) bool {
	return strings.HasPrefix(key, FeedPrefix) || strings.HasPrefix(key, SwitchPrefix) || strings.HasPrefix(key, PoolPrefix)
}
