package chaosmesh

import (
	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Manifest is a Workflow as one applies it: without the status the API
// type always carries (empty until Chaos Mesh fills it).
type Manifest struct {
	// apiVersion first, as manifests are written
	APIVersion string                `json:"apiVersion"`
	Kind       string                `json:"kind"`
	Metadata   metav1.ObjectMeta     `json:"metadata"`
	Spec       v1alpha1.WorkflowSpec `json:"spec"`
}

// Manifest returns the export's Workflow to encode.
func (e *Export) Manifest() Manifest {
	return Manifest{APIVersion: e.Workflow.APIVersion, Kind: e.Workflow.Kind, Metadata: e.Workflow.ObjectMeta, Spec: e.Workflow.Spec}
}
