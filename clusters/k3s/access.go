// Package k3s is the backend that runs a scenario on the adopter's own
// cluster (K3S or any conformant Kubernetes). This part is what touches
// the cluster before anything is deployed: connecting only through a
// context the user named, mapping scenario nodes to cluster nodes,
// checking the cluster against the scenario, and labelling its nodes with
// the scenario's topology.
package k3s

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// requestTimeout bounds one API request: a cluster that does not answer
// is reported instead of hanging the command.
const requestTimeout = 30 * time.Second

// Access names the cluster: a kubeconfig and one of its contexts.
type Access struct {
	// Kubeconfig is the file; empty means kubectl's: the files $KUBECONFIG
	// lists, else ~/.kube/config.
	Kubeconfig string
	// Context must be named: the kubeconfig's current context is never
	// used by default, so that chaosloop cannot act on whichever cluster
	// the user last switched kubectl to.
	Context string
}

// Cluster is a connection to the cluster a context names.
type Cluster struct {
	Client kubernetes.Interface
	// Dynamic reaches every resource, for `down`, which must find
	// chaosloop's objects of whatever kind; nil in tests that need none.
	Dynamic dynamic.Interface
	// Config is the client configuration, for the streams the clientsets
	// do not open (port-forward to an attached member's pod).
	Config *rest.Config
	// Context is the context used, Server its API server (for messages).
	Context, Server string
}

// ContextError is a context that was not named, or not found: it lists
// the contexts there are, so the user can name one.
type ContextError struct {
	// Name is the context asked for, "" when none was.
	Name string
	// Current is the kubeconfig's current context, which is not used.
	Current string
	// Available are the kubeconfig's contexts, sorted.
	Available []string
	// Files are where the kubeconfig was read from.
	Files []string
}

func (e *ContextError) Error() string {
	var b strings.Builder
	if e.Name == "" {
		b.WriteString("no context named: chaosloop uses a cluster only through a context named with --context")
		if e.Current != "" {
			fmt.Fprintf(&b, " (the kubeconfig's current context, %q, is not used unless named)", e.Current)
		}
	} else {
		fmt.Fprintf(&b, "no context %q in the kubeconfig", e.Name)
	}
	if len(e.Available) == 0 {
		fmt.Fprintf(&b, "; %s holds no contexts", strings.Join(e.Files, ", "))
	} else {
		fmt.Fprintf(&b, "; contexts in %s: %s", strings.Join(e.Files, ", "), strings.Join(e.Available, ", "))
	}
	return b.String()
}

// Connect loads the kubeconfig and makes a client for the named context.
// It reads files only: the API server is first asked by what uses the
// client.
func Connect(log *slog.Logger, a Access) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	// Migration would move an old ~/.kube/.kubeconfig into place: a
	// change chaosloop was not asked to make.
	rules.MigrationRules = nil
	if a.Kubeconfig != "" {
		rules.ExplicitPath = a.Kubeconfig
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if err := checkContext(raw, a.Context, rules.GetLoadingPrecedence()); err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*raw, a.Context, &clientcmd.ConfigOverrides{}, rules).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", a.Context, err)
	}
	return NewCluster(log, rc, a.Context)
}

// checkContext refuses an unnamed context and one the kubeconfig lacks.
func checkContext(raw *clientcmdapi.Config, name string, files []string) error {
	if _, ok := raw.Contexts[name]; ok && name != "" {
		return nil
	}
	names := make([]string, 0, len(raw.Contexts))
	for n := range raw.Contexts {
		names = append(names, n)
	}
	slices.Sort(names)
	return &ContextError{Name: name, Current: raw.CurrentContext, Available: names, Files: files}
}

// NewCluster makes a client of rc, named context in messages; Connect is
// the way in from a kubeconfig (a test wraps rc's transport).
func NewCluster(log *slog.Logger, rc *rest.Config, context string) (*Cluster, error) {
	if rc.Timeout == 0 {
		rc.Timeout = requestTimeout
	}
	// client-go's default (5 a second) makes down's list of every kind in
	// its namespace take 20 s; kubectl allows 50 for the same reason
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	// down lists every kind, deprecated ones (v1 Endpoints) too: the
	// server's deprecation warnings about them are not the user's
	rc.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", context, err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", context, err)
	}
	log.Info("k3s: cluster", "context", context, "server", rc.Host)
	return &Cluster{Client: client, Dynamic: dyn, Config: rc, Context: context, Server: rc.Host}, nil
}

// IsContextError reports whether err is a context that was not named or
// not found: the user's to fix (a usage error), not the cluster's.
func IsContextError(err error) bool {
	var ce *ContextError
	return errors.As(err, &ce)
}
