package chaosmesh

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/scenarios"
	"github.com/chaosloop/chaosloop/topology"
)

// DefaultNamespace is where chaosloop's kind backend runs the members'
// pods.
const DefaultNamespace = kindlab.Namespace

// Keys of the workflow's label and annotations; the annotations' names
// end in .fN, N the fault's index in the scenario.
const (
	LabelScenario        = "chaosloop.io/scenario"
	AnnotateFault        = "chaosloop.io/fault"
	AnnotateApproximated = "chaosloop.io/approximation"
)

// ErrNoFaults is returned for a scenario without faults.
var ErrNoFaults = errors.New("has no faults: section: nothing to export")

// Options say where the workflow goes.
type Options struct {
	// Namespace holds the Workflow and the pods it selects
	// (DefaultNamespace when empty).
	Namespace string
}

// Export is a scenario's faults as a Chaos Mesh Workflow.
type Export struct {
	Workflow *v1alpha1.Workflow
	// Approximations are the faults whose Chaos Mesh form differs from
	// what chaosloop does, each with how ("fN ACTION TARGET: ...").
	Approximations []string
	// Skipped are the faults that inject nothing, each with why.
	Skipped []string
}

// item is one fault of the scenario, mapped and timed: offsets from the
// scenario's time zero (the end of its warmup); dur 0 when it lasts until
// the workflow is deleted.
type item struct {
	index   int
	f       scenarios.Fault
	at, dur time.Duration
	m       mapped
}

// Build maps every fault of a defaulted, validated scenario and schedules
// them in one Workflow named after the scenario.
func Build(sc *scenarios.Scenario, opts Options) (*Export, error) {
	if len(sc.Faults) == 0 {
		return nil, fmt.Errorf("scenario %s %w", sc.Name, ErrNoFaults)
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	t, err := topology.Build(sc)
	if err != nil {
		return nil, err
	}
	m := &mapper{t: t, ns: opts.Namespace}
	b := &builder{annotations: map[string]string{}}
	out := &Export{}
	var items []item
	for i, f := range sc.Faults {
		mf, err := m.mapFault(f)
		if err != nil {
			return nil, fmt.Errorf("faults[%d] %s %s: %w", i, f.Action, f.Target, err)
		}
		it := item{index: i, f: f, at: f.At.D(), dur: duration(sc, f), m: mf}
		key := fmt.Sprintf(".f%d", i)
		b.annotations[AnnotateFault+key] = describe(it)
		what := fmt.Sprintf("f%d %s %s: ", i, f.Action, f.Target)
		if mf.none != "" {
			b.annotations[AnnotateFault+key] += "; not exported: " + mf.none
			out.Skipped = append(out.Skipped, what+mf.none)
			continue
		}
		if mf.approx != "" {
			b.annotations[AnnotateApproximated+key] = mf.approx
			out.Approximations = append(out.Approximations, what+mf.approx)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("scenario %s: none of its faults injects anything in Chaos Mesh's terms", sc.Name)
	}
	out.Workflow = b.workflow(sc.Name, opts.Namespace, lanes(items))
	return out, nil
}

// duration is how long a fault lasts: its for, cut at the end of the
// scenario's load as chaosloop heals whatever is left then; without for,
// until that end; without load either, 0 (until the workflow is deleted).
func duration(sc *scenarios.Scenario, f scenarios.Fault) time.Duration {
	d := f.For.D()
	if sc.Load != nil {
		if left := sc.Load.Duration.D() - f.At.D(); left > 0 && (d == 0 || d > left) {
			d = left
		}
	}
	return d
}

// describe is what chaosloop does for a fault, for its annotation.
func describe(it item) string {
	s := fmt.Sprintf("%s %s at %s", it.f.Action, it.f.Target, it.at)
	if it.dur > 0 {
		return s + " for " + it.dur.String()
	}
	return s + " until the end"
}

// lanes puts the faults, by time, into the fewest lanes of faults that do
// not overlap: each lane is one Serial branch, the lanes run in parallel.
func lanes(items []item) [][]item {
	slices.SortStableFunc(items, func(a, b item) int { return int(a.at - b.at) })
	var out [][]item
	for _, it := range items {
		k := slices.IndexFunc(out, func(l []item) bool {
			last := l[len(l)-1]
			return last.dur > 0 && last.at+last.dur <= it.at
		})
		if k < 0 {
			out = append(out, nil)
			k = len(out) - 1
		}
		out[k] = append(out[k], it)
	}
	return out
}

// builder collects a workflow's templates and annotations.
type builder struct {
	templates   []v1alpha1.Template
	annotations map[string]string
}

// entry is the name of the workflow's first template.
const entry = "entry"

// workflow is the Workflow running the lanes: the entry is the only
// lane's Serial, or a Parallel of every lane's.
func (b *builder) workflow(name, ns string, ls [][]item) *v1alpha1.Workflow {
	if len(ls) == 1 {
		b.lane(entry, ls[0])
	} else {
		var children []string
		for k, l := range ls {
			children = append(children, b.lane(fmt.Sprintf("lane-%d", k), l))
		}
		b.add(v1alpha1.Template{Name: entry, Type: v1alpha1.TypeParallel, Children: children})
	}
	return &v1alpha1.Workflow{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.KindWorkflow},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{LabelScenario: name},
			Annotations: b.annotations,
		},
		Spec: v1alpha1.WorkflowSpec{Entry: entry, Templates: b.ordered()},
	}
}

// lane is a Serial of the lane's faults, a Suspend before each one that
// does not start as the previous one ends.
func (b *builder) lane(name string, items []item) string {
	var children []string
	var clock time.Duration
	for _, it := range items {
		if gap := it.at - clock; gap > 0 {
			wait := fmt.Sprintf("f%d-wait", it.index)
			b.add(v1alpha1.Template{Name: wait, Type: v1alpha1.TypeSuspend, Deadline: deadline(gap)})
			children = append(children, wait)
		}
		children = append(children, b.fault(it))
		clock = it.at + it.dur
	}
	b.add(v1alpha1.Template{Name: name, Type: v1alpha1.TypeSerial, Children: children})
	return name
}

// fault adds a fault's chaos templates, each with the fault's duration as
// its deadline, and returns the name of its step: its only template, or a
// Parallel of them.
func (b *builder) fault(it item) string {
	base := fmt.Sprintf("f%d-%s", it.index, it.f.Action)
	var dl *string
	if it.dur > 0 {
		dl = deadline(it.dur)
	}
	if len(it.m.parts) == 1 {
		p := it.m.parts[0]
		b.add(v1alpha1.Template{Name: base, Type: p.kind, Deadline: dl, EmbedChaos: &p.chaos})
		return base
	}
	var children []string
	for j, p := range it.m.parts {
		name := fmt.Sprintf("%s-%d", base, j)
		b.add(v1alpha1.Template{Name: name, Type: p.kind, Deadline: dl, EmbedChaos: &p.chaos})
		children = append(children, name)
	}
	b.add(v1alpha1.Template{Name: base, Type: v1alpha1.TypeParallel, Children: children})
	return base
}

func (b *builder) add(t v1alpha1.Template) { b.templates = append(b.templates, t) }

// ordered lists the templates as a reader follows them: the entry, then
// each step before its children, in the order they run.
func (b *builder) ordered() []v1alpha1.Template {
	byName := map[string]v1alpha1.Template{}
	for _, t := range b.templates {
		byName[t.Name] = t
	}
	out := make([]v1alpha1.Template, 0, len(b.templates))
	var visit func(name string)
	visit = func(name string) {
		t := byName[name]
		out = append(out, t)
		for _, c := range t.Children {
			visit(c)
		}
	}
	visit(entry)
	return out
}

func deadline(d time.Duration) *string {
	s := d.String()
	return &s
}
