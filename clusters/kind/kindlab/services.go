package kindlab

import "encoding/json"

// ServiceObjects are the members' namespace and, per named service, a
// headless Service selecting its members' pods: the service's members get
// DNS names in the cluster (<pod>.<service>... through the endpoints, and
// <service>.chaosloop.svc for all of them), as a StatefulSet's governing
// Service gives them. No ports: a member pod is on its node's network, so
// the endpoints are the nodes' lab addresses and every port is the
// engine's own. Members not ready are published too: an engine's peers
// find each other before any is ready. Returned as a v1 List for
// kubectl apply.
func ServiceObjects(services []string) []byte {
	items := []any{map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": Namespace},
	}}
	for _, sv := range services {
		items = append(items, map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{
				"name": PodName(sv), "namespace": Namespace,
				"labels": map[string]string{LabelService: PodName(sv)},
			},
			"spec": map[string]any{
				"clusterIP":                "None",
				"publishNotReadyAddresses": true,
				"selector":                 map[string]string{LabelService: PodName(sv)},
			},
		})
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	return b
}
