package k3s

import (
	"fmt"
	"hash/fnv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// What chaosloop owns on a cluster. Every object it creates lives in one
// namespace and carries both labels, so that `down` can find exactly its
// own objects and leave everything else, including another scenario's.
const (
	// Namespace holds every object chaosloop creates.
	Namespace = "chaosloop"
	// LabelManagedBy is the Kubernetes recommended label; ManagedBy its
	// value on chaosloop's objects.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "chaosloop"
	// LabelScenario names the scenario an object was created for.
	LabelScenario = "chaosloop.io/scenario"
	// AgentName is the node agent's DaemonSet; its per-node ConfigMaps are
	// AgentName-NODE.
	AgentName = "chaosloop-agent"
	// DataRoot is where chaosloop's members keep their files on their
	// nodes (deploy mode), a scenario's under DataRoot/SCENARIO.
	DataRoot = "/var/lib/chaosloop"
)

// OwnedLabels are the labels of every object chaosloop creates for a
// scenario. The scenario's name must be a label value: a DNS-1123 label,
// which a scenario's name already is.
func OwnedLabels(scenario string) (map[string]string, error) {
	if errs := validation.IsDNS1123Label(scenario); len(errs) > 0 {
		return nil, fmt.Errorf("scenario name %q cannot label chaosloop's objects: %s", scenario, strings.Join(errs, "; "))
	}
	return map[string]string{LabelManagedBy: ManagedBy, LabelScenario: scenario}, nil
}

// OwnedSelector selects a scenario's objects: both labels must match.
func OwnedSelector(scenario string) (string, error) {
	if _, err := OwnedLabels(scenario); err != nil {
		return "", err
	}
	return LabelManagedBy + "=" + ManagedBy + "," + LabelScenario + "=" + scenario, nil
}

// AgentConfigMap is the name of the agent's ConfigMap of rules for a
// cluster node.
func AgentConfigMap(node string) string { return nodeObject(AgentName+"-", node) }

// AgentStatusConfigMap is where the agent on a cluster node reports what
// it applied.
func AgentStatusConfigMap(node string) string { return nodeObject(AgentName+"-status-", node) }

// nodeObject names a node's object prefix+node. A node name is a DNS-1123
// subdomain of up to 253 characters, so the prefix could make it too
// long: such a name is cut and ends in a hash of the node's name.
func nodeObject(prefix, node string) string {
	name := prefix + node
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	return fmt.Sprintf("%s-%08x", strings.TrimRight(name[:validation.DNS1123SubdomainMaxLength-9], "-."), h.Sum32())
}
