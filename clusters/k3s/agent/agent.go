package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/chaosloop/chaosloop/clusters/k3s"
	"github.com/chaosloop/chaosloop/clusters/local/netdelay"
)

// DefaultResync is how often the agent reconciles with no change seen:
// it repairs rules someone removed by hand (or a firewall reload).
const DefaultResync = 30 * time.Second

// retryAfter is the wait before a failed reconcile is tried again.
const retryAfter = 2 * time.Second

// Config is one agent's.
type Config struct {
	Kube kubernetes.Interface
	// Node is the node the agent runs on: its desired state is
	// ConfigMapName(Node).
	Node string
	// Agent names this agent in its status (its pod's name).
	Agent string
	// Scenario labels the status the agent writes (k3s.OwnedLabels), so
	// that down removes it with the rest of the scenario's objects.
	Scenario string
	// Resync is DefaultResync when 0.
	Resync time.Duration
	// Cgroups is the node's cgroup root (its /sys/fs/cgroup) and StateDir
	// a directory on the node for the agent's marks of frozen pods: freeze
	// rules need both ("": refused).
	Cgroups, StateDir string
}

// Run reconciles the current network namespace's iptables to the node's
// desired state until ctx ends. The rules stay when it returns (see the
// package comment); only the latency rules' delayers stop.
func Run(ctx context.Context, log *slog.Logger, cfg Config) error {
	if cfg.Node == "" {
		return errors.New("agent: no node name")
	}
	owned, err := k3s.OwnedLabels(cfg.Scenario)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	log = log.With("node", cfg.Node)
	// No informer resync: with no desired state there is no object to
	// resync, so the loop below has a ticker of its own.
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0,
		informers.WithNamespace(Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName(cfg.Node)).String()
		}))
	cms := factory.Core().V1().ConfigMaps()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	// Every event is a reason to reconcile; what changed does not matter.
	if _, err := cms.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rc := &reconciler{t: ipt{log: log}, log: log, delayers: map[string]*delayer{}, poke: poke}
	if cfg.Cgroups != "" && cfg.StateDir != "" {
		rc.fz = &freezer{cgroups: cfg.Cgroups, state: cfg.StateDir}
	}
	defer rc.stopAll()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	log.Info("agent: started; waiting for the desired state", "configmap", Namespace+"/"+ConfigMapName(cfg.Node))
	// Nothing is touched before the desired state is known: rules left by
	// a previous agent stay until it says otherwise.
	if !cache.WaitForCacheSync(ctx.Done(), cms.Informer().HasSynced) {
		return nil
	}
	poke() // the first reconcile: adopt or remove what is in place
	tick := time.NewTicker(cfg.Resync)
	defer tick.Stop()
	var last *Status
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	// expiry fires when the next rule with an expiry time runs out: an
	// agent cut off from the API server by its own rules lifts them then
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("agent: stopping; rules stay in place")
			return nil
		case <-kick:
		case <-retry.C:
		case <-tick.C:
		case <-expiry.C:
		}
		start := time.Now()
		st := rc.once(ctx, cms.Lister().ConfigMaps(Namespace), cfg.Node)
		st.Agent = cfg.Agent
		if !rc.nextExpiry.IsZero() {
			expiry.Reset(time.Until(rc.nextExpiry))
		}
		if st.Error != "" {
			log.Warn("agent: reconcile failed; retrying", "err", st.Error, "in", retryAfter)
			retry.Reset(retryAfter)
		}
		if last == nil || last.Generation != st.Generation || !slices.Equal(last.Applied, st.Applied) || !slices.Equal(last.Expired, st.Expired) || last.Error != st.Error {
			log.Info("agent: applied", "generation", st.Generation, "rules", st.Applied, "took", time.Since(start).Round(time.Millisecond))
			if err := writeStatus(ctx, cfg.Kube, cfg.Node, owned, st); err != nil {
				log.Warn("agent: status not written; retrying", "err", err)
				retry.Reset(retryAfter)
				continue
			}
			last = &st
		}
	}
}

// expire splits rules into those still in force at now and the ids of
// those whose expiry time has passed, and says when the next of the live
// ones expires (zero when none has an expiry time).
func expire(rules []Rule, now time.Time) (live []Rule, expired []string, next time.Time) {
	for _, r := range rules {
		switch {
		case r.Expires == nil:
			live = append(live, r)
		case !now.Before(*r.Expires):
			expired = append(expired, r.ID)
		default:
			live = append(live, r)
			if next.IsZero() || r.Expires.Before(next) {
				next = *r.Expires
			}
		}
	}
	slices.Sort(expired)
	return live, expired, next
}

func (rc *reconciler) clock() time.Time {
	if rc.now != nil {
		return rc.now()
	}
	return time.Now()
}

// reconciler holds what the agent runs besides iptables: the delayers of
// latency rules, by chain.
type reconciler struct {
	t        ipt
	log      *slog.Logger
	delayers map[string]*delayer
	poke     func()
	// fz applies freeze rules (nil: refused).
	fz *freezer
	// nextExpiry is when the next rule of the last desired state expires
	// (zero: none will).
	nextExpiry time.Time
	// now is time.Now, or a test's clock.
	now func() time.Time
}

type delayer struct {
	queue  uint16
	cancel context.CancelFunc
	done   chan struct{}
}

// once reconciles to the desired state in the lister.
func (rc *reconciler) once(ctx context.Context, l interface {
	Get(string) (*corev1.ConfigMap, error)
}, node string) Status {
	cm, err := l.Get(ConfigMapName(node))
	var rules []Rule
	var gen int64
	switch {
	case apierrors.IsNotFound(err):
		// no desired state (or deleted): no faults
	case err != nil:
		return Status{Error: err.Error(), Time: time.Now()}
	default:
		gen = generation(cm)
		if rules, err = parseRules(cm.Data[RulesKey]); err != nil {
			// a desired state the agent cannot read changes nothing
			return Status{Generation: gen, Error: err.Error(), Time: time.Now()}
		}
	}
	live, expired, next := expire(rules, rc.clock())
	rc.nextExpiry = next
	applied, err := rc.apply(ctx, live)
	if applied == nil {
		applied = []string{} // "applied": [] rather than null
	}
	st := Status{Generation: gen, Applied: applied, Expired: expired, Time: time.Now()}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// apply makes the chains match rules: new and changed rules' chains are
// filled and hooked first, then those no longer wanted are unhooked and
// deleted, so that changing a rule never lifts it for a moment. It returns
// the ids of the rules in place.
func (rc *reconciler) apply(ctx context.Context, rules []Rule) ([]string, error) {
	var applied []string
	var errs []error
	wantChains := map[string]bool{}
	for _, table := range []string{"filter", "mangle"} {
		st, err := rc.t.read(ctx, table)
		if err == nil {
			err = rc.t.ensureBase(ctx, table, st)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		used := map[uint16]bool{}
		for _, lines := range st.chains {
			if q, ok := queueOf(lines); ok {
				used[q] = true
			}
		}
		want := map[string]bool{}
		for _, r := range rules {
			if tableOf(r.Kind) != table {
				continue
			}
			name := r.chain()
			want[name], wantChains[name] = true, true
			if err := rc.put(ctx, table, st, r, name, used); err != nil {
				errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, err))
				continue
			}
			applied = append(applied, r.ID)
		}
		var nums []int
		seen := map[string]bool{}
		for i, j := range st.jumps {
			if !want[j] || seen[j] { // unwanted, or a duplicate
				nums = append(nums, i+1)
			}
			seen[j] = true
		}
		if err := rc.t.unhook(ctx, table, nums); err != nil {
			errs = append(errs, err)
		}
		for c := range st.chains {
			if want[c] {
				continue
			}
			if err := rc.t.drop(ctx, table, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for c, d := range rc.delayers {
		if !wantChains[c] {
			rc.stop(c, d)
		}
	}
	ids, err := rc.freeze(rules)
	applied = append(applied, ids...)
	errs = append(errs, err)
	slices.Sort(applied)
	return applied, errors.Join(errs...)
}

// freeze applies the freeze rules among rules, thawing what is no
// longer wanted.
func (rc *reconciler) freeze(rules []Rule) ([]string, error) {
	var freezes []Rule
	for _, r := range rules {
		if r.Kind == Freeze {
			freezes = append(freezes, r)
		}
	}
	if rc.fz != nil {
		return rc.fz.apply(freezes)
	}
	var errs []error
	for _, r := range freezes {
		errs = append(errs, fmt.Errorf("rule %s: %w", r.ID, errNoFreezer))
	}
	return nil, errors.Join(errs...)
}

// put makes r's chain complete, its delayer bound and the chain hooked.
func (rc *reconciler) put(ctx context.Context, table string, st tableState, r Rule, name string, used map[uint16]bool) error {
	have, exists := st.chains[name]
	var q uint16
	if r.Kind == Latency {
		var ok bool
		if q, ok = queueOf(have); !ok {
			var err error
			if q, err = allocQueue(r.ID, used); err != nil {
				return err
			}
		}
		// bound before packets are queued, though --queue-bypass lets
		// them through undelayed meanwhile anyway
		if err := rc.delay(ctx, name, q, r); err != nil {
			return err
		}
	}
	if err := rc.t.fill(ctx, table, name, have, exists, r.lines(q)); err != nil {
		return err
	}
	if slices.Contains(st.jumps, name) {
		return nil
	}
	_, err := rc.t.run(ctx, table, append([]string{"-A", baseChain}, jump(r.ID, name)...)...)
	return err
}

// delay runs a delayer for chain's queue unless one runs.
func (rc *reconciler) delay(ctx context.Context, chain string, q uint16, r Rule) error {
	if d, ok := rc.delayers[chain]; ok {
		select {
		case <-d.done: // died: start another
			delete(rc.delayers, chain)
		default:
			return nil
		}
	}
	h := fnv.New64a()
	h.Write([]byte(chain))
	dctx, cancel := context.WithCancel(ctx)
	nd, err := netdelay.Open(dctx, rc.log.With("rule", r.ID), netdelay.Config{
		Queue: q, Delay: time.Duration(r.Delay), Jitter: time.Duration(r.Jitter), Loss: r.Loss, Seed: h.Sum64(),
	})
	if err != nil {
		cancel()
		return err
	}
	d := &delayer{queue: q, cancel: cancel, done: make(chan struct{})}
	rc.delayers[chain] = d
	go func() {
		defer close(d.done)
		if err := nd.Serve(dctx); err != nil && dctx.Err() == nil {
			rc.log.Error("agent: delayer stopped", "rule", r.ID, "err", err)
			rc.poke() // the next reconcile starts another
		}
	}()
	return nil
}

func (rc *reconciler) stop(chain string, d *delayer) {
	d.cancel()
	<-d.done
	delete(rc.delayers, chain)
}

func (rc *reconciler) stopAll() {
	for c, d := range rc.delayers {
		rc.stop(c, d)
	}
}

// writeStatus creates or updates node's status ConfigMap.
func writeStatus(ctx context.Context, kube kubernetes.Interface, node string, owned map[string]string, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	cms := kube.CoreV1().ConfigMaps(Namespace)
	return retry.OnError(retry.DefaultRetry, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		cm, err := cms.Get(ctx, StatusName(node), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lbl := labels.Set{ComponentLabel: ComponentStatus, NodeLabel: node}
			maps.Copy(lbl, owned)
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: StatusName(node), Namespace: Namespace, Labels: lbl},
				Data:       map[string]string{StatusKey: string(b)},
			}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
			return err
		}
		if err != nil {
			return err
		}
		cm.Data = map[string]string{StatusKey: string(b)}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}
