package scenarios

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Target kinds: the first segment of a target path.
const (
	TargetSite    = "site"
	TargetRack    = "rack"
	TargetNode    = "node"
	TargetFeed    = "feed"
	TargetSwitch  = "switch"
	TargetLink    = "link"
	TargetService = "service"
)

// Target is a parsed target path (section 2 of the spec).
type Target struct {
	Kind string
	// Site is set for rack targets; A and B are a link's sites, sorted.
	Site, Name string
	A, B       string
	// Member selects a service member: "" (chosen at run time), "leader",
	// or a member index.
	Member string
}

// ParseTarget parses site/NAME, rack/SITE/NAME, node/NAME, feed/NAME,
// switch/NAME, link/SITE-A/SITE-B and service/NAME[/leader|/INDEX].
func ParseTarget(s string) (Target, error) {
	parts := strings.Split(s, "/")
	bad := func(want string) (Target, error) {
		return Target{}, fmt.Errorf("invalid target %q: want %s", clip(s), want)
	}
	if slices.Contains(parts, "") {
		return bad("a path such as rack/dc1/r1, with no empty segment")
	}
	switch parts[0] {
	case TargetSite, TargetNode, TargetFeed, TargetSwitch:
		if len(parts) != 2 {
			return bad(parts[0] + "/NAME")
		}
		return Target{Kind: parts[0], Name: parts[1]}, nil
	case TargetRack:
		if len(parts) != 3 {
			return bad("rack/SITE/NAME")
		}
		return Target{Kind: TargetRack, Site: parts[1], Name: parts[2]}, nil
	case TargetLink:
		if len(parts) != 3 {
			return bad("link/SITE-A/SITE-B")
		}
		a, b := parts[1], parts[2]
		if a == b {
			return bad("a link between two different sites")
		}
		if b < a {
			a, b = b, a
		}
		return Target{Kind: TargetLink, A: a, B: b}, nil
	case TargetService:
		switch len(parts) {
		case 2:
			return Target{Kind: TargetService, Name: parts[1]}, nil
		case 3:
			m := parts[2]
			if m != "leader" {
				if i, err := strconv.Atoi(m); err != nil || i < 0 || strconv.Itoa(i) != m {
					return bad("service/NAME, service/NAME/leader or service/NAME/INDEX")
				}
			}
			return Target{Kind: TargetService, Name: parts[1], Member: m}, nil
		}
		return bad("service/NAME, service/NAME/leader or service/NAME/INDEX")
	}
	return bad("one of site/, rack/, node/, feed/, switch/, link/ or service/")
}

// String returns the canonical path (links with sorted sites).
func (t Target) String() string {
	switch t.Kind {
	case TargetRack:
		return "rack/" + t.Site + "/" + t.Name
	case TargetLink:
		return "link/" + t.A + "/" + t.B
	case TargetService:
		if t.Member != "" {
			return "service/" + t.Name + "/" + t.Member
		}
	}
	return t.Kind + "/" + t.Name
}

// actionTargets is the spec's table of which targets each action takes.
var actionTargets = map[string][]string{
	ActionPowerOff: {TargetNode, TargetRack, TargetSite, TargetFeed},
	ActionIsolate:  {TargetNode, TargetRack, TargetSite, TargetSwitch, TargetLink},
	ActionKill:     {TargetService},
	ActionPause:    {TargetService},
	ActionLatency:  {TargetLink, TargetNode},
	ActionDestroy:  {TargetNode, TargetRack, TargetSite},
}

// ActionTargets returns the target kinds an action accepts.
func ActionTargets(action string) []string { return actionTargets[action] }

// TargetPattern is the syntax of a target of the given kinds (of every kind
// without any), names being DNS-1123 labels: the JSON Schema's form of
// ParseTarget. A member index is below MaxReplicas.
func TargetPattern(kinds ...string) string {
	if len(kinds) == 0 {
		kinds = []string{TargetSite, TargetRack, TargetNode, TargetFeed, TargetSwitch, TargetLink, TargetService}
	}
	label := strings.TrimSuffix(strings.TrimPrefix(LabelPattern, "^"), "$")
	index := fmt.Sprintf("(0|[1-9][0-9]{0,%d})", len(strconv.Itoa(MaxReplicas-1))-1)
	var alts []string
	for _, k := range kinds {
		switch k {
		case TargetRack, TargetLink:
			alts = append(alts, k+"/"+label+"/"+label)
		case TargetService:
			alts = append(alts, k+"/"+label+"(/leader|/"+index+")?")
		default:
			alts = append(alts, k+"/"+label)
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}
