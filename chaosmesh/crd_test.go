package chaosmesh

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/chaosloop/chaosloop/chaosmesh/meshtest"
)

// workflowSchema compiles the Workflow CRD's openAPIV3Schema as the API
// server applies it with strict field validation (kubectl apply's
// default): a field the schema does not list is an error.
func workflowSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data := meshtest.CRDManifest(t, "workflows")
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
				}
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(data, &crd))
	require.Equal(t, "v1alpha1", crd.Spec.Versions[0].Name)
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	strict(schema)
	js, err := json.Marshal(schema)
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("workflow.json", doc))
	sch, err := c.Compile("workflow.json")
	require.NoError(t, err)
	return sch
}

// strict forbids the fields an object schema does not list, unless it
// keeps unknown fields: what the API server's strict field validation
// refuses (it would otherwise prune them silently).
func strict(v any) {
	switch v := v.(type) {
	case map[string]any:
		_, props := v["properties"]
		_, extra := v["additionalProperties"]
		if props && !extra && v["x-kubernetes-preserve-unknown-fields"] != true {
			v["additionalProperties"] = false
		}
		for _, c := range v {
			strict(c)
		}
	case []any:
		for _, c := range v {
			strict(c)
		}
	}
}

// Every exported workflow is valid against the CRD, and against Chaos
// Mesh's own admission webhook (its Go code, run here).
func TestWorkflowsAreValid(t *testing.T) {
	sch := workflowSchema(t)
	for name, file := range goldenCases {
		t.Run(name, func(t *testing.T) {
			ex := build(t, file)
			js, err := json.Marshal(ex.Manifest())
			require.NoError(t, err)
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			require.NoError(t, err)
			require.NoError(t, sch.Validate(v))

			// what the API server checks of any object's metadata
			for k, v := range ex.Workflow.Labels {
				require.Empty(t, validation.IsQualifiedName(k), k)
				require.Empty(t, validation.IsValidLabelValue(v), v)
			}
			for k := range ex.Workflow.Annotations {
				require.Empty(t, validation.IsQualifiedName(k), k)
			}
			require.Empty(t, validation.IsDNS1123Label(ex.Workflow.Name))

			// the webhook defaults what it checks: give it a copy
			var wf v1alpha1.Workflow
			require.NoError(t, json.Unmarshal(js, &wf))
			_, err = wf.ValidateCreate(context.Background(), &wf)
			require.NoError(t, err)
		})
	}
}

// The checks catch what they must: a field the CRD does not know, a
// Go-style duration its pattern refuses, a chaos duration inside a
// workflow.
func TestValidationCatchesMistakes(t *testing.T) {
	sch := workflowSchema(t)
	ex := build(t, "../scenarios/quickstart.yaml")
	js, err := json.Marshal(ex.Manifest())
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(js, &obj))
	spec := obj["spec"].(map[string]any)
	spec["bogus"] = true
	require.Error(t, sch.Validate(obj))
	delete(spec, "bogus")
	require.NoError(t, sch.Validate(obj))
	tps := spec["templates"].([]any)
	tps[len(tps)-1].(map[string]any)["networkChaos"].(map[string]any)["delay"] = map[string]any{"latency": "1m30s"}
	require.Error(t, sch.Validate(obj))

	var wf v1alpha1.Workflow
	require.NoError(t, json.Unmarshal(js, &wf))
	d := "30s"
	wf.Spec.Templates[len(wf.Spec.Templates)-1].NetworkChaos.Duration = &d
	_, err = wf.ValidateCreate(context.Background(), &wf)
	require.ErrorContains(t, err, "should not define duration")
}
