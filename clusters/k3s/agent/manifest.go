package agent

import (
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaosloop/chaosloop/clusters/k3s"
)

// Name names the agent's DaemonSet, ServiceAccount and Role.
const Name = k3s.AgentName

// CgroupsMount is where the agent sees the node's /sys/fs/cgroup, and
// StateDir the node's directory (the same path in the agent) where it
// marks the pods it froze.
const (
	CgroupsMount = "/host/sys/fs/cgroup"
	StateDir     = "/var/lib/chaosloop-agent"
)

// Manifest is what deploys the agent: apply in this order.
type Manifest struct {
	Namespace      *corev1.Namespace
	ServiceAccount *corev1.ServiceAccount
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	DaemonSet      *appsv1.DaemonSet
}

// NewManifest returns the agent's objects for image (an image holding the
// chaosloop binary and iptables), deployed for scenario: each carries its
// owned labels (k3s.OwnedLabels), which down selects, and the agent labels
// the status it writes with them too. The namespace carries managed-by
// only, being every scenario's.
func NewManifest(image, scenario string) (Manifest, error) {
	owned, err := k3s.OwnedLabels(scenario)
	if err != nil {
		return Manifest{}, err
	}
	lbl := map[string]string{ComponentLabel: ComponentAgent, "app.kubernetes.io/name": Name}
	maps.Copy(lbl, owned)
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: lbl}
	}
	yes := true
	root := int64(0)
	return Manifest{
		// the namespace is every scenario's: managed-by only, so that down
		// deletes it once no scenario's object is left in it
		Namespace: &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{ManagedByLabel: ManagedBy}},
		},
		ServiceAccount: &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(Name),
		},
		// The agent reads its node's desired state and writes its status:
		// ConfigMaps of its own namespace, nothing else.
		Role: &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: meta(Name),
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""},
				Resources: []string{"configmaps"},
				Verbs:     []string{"get", "list", "watch", "create", "update"},
			}},
		},
		RoleBinding: &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: meta(Name),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: Namespace}},
		},
		DaemonSet: &appsv1.DaemonSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: meta(Name),
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": Name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: lbl},
					Spec: corev1.PodSpec{
						ServiceAccountName: Name,
						// the node's own network namespace is the one to cut
						HostNetwork: true,
						// a hard kill signals a pod's processes by the PIDs its
						// cgroups list, which are the node's (kill.go)
						HostPID:   true,
						DNSPolicy: corev1.DNSClusterFirstWithHostNet,
						// faults are injected on every node, masters included
						Tolerations: []corev1.Toleration{
							{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
							{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
							{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						},
						PriorityClassName: "system-node-critical",
						Containers: []corev1.Container{{
							Name:  "agent",
							Image: image,
							Command: []string{"chaosloop", "internal", "agent", "--in-cluster", "--node", "$(NODE_NAME)", "--scenario", scenario,
								"--cgroups", CgroupsMount, "--state-dir", StateDir},
							Env: []corev1.EnvVar{
								{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
								{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							},
							SecurityContext: &corev1.SecurityContext{
								RunAsUser: &root,
								// iptables and NFQUEUE need NET_ADMIN; a freeze is a
								// write to a root-owned cgroup file; the deployed
								// members' files under DataRoot are their engines'
								// users' (redis, mysql), which root writes, removes and
								// chmods with DAC_OVERRIDE and FOWNER (package deploy's
								// NodeFiles); a hard kill signals those users'
								// processes with KILL. Nothing more.
								Capabilities:           &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "DAC_OVERRIDE", "FOWNER", "KILL"}, Drop: []corev1.Capability{"ALL"}},
								ReadOnlyRootFilesystem: &yes,
							},
							VolumeMounts: []corev1.VolumeMount{
								{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
								{Name: "cgroups", MountPath: CgroupsMount},
								{Name: "state", MountPath: StateDir},
								{Name: "data", MountPath: k3s.DataRoot},
							},
						}},
						Volumes: []corev1.Volume{
							// iptables takes the xtables lock under /run
							{Name: "xtables-lock", VolumeSource: corev1.VolumeSource{
								HostPath: &corev1.HostPathVolumeSource{Path: "/run/xtables.lock", Type: ptr(corev1.HostPathFileOrCreate)},
							}},
							// pause freezes a pod's cgroup (freeze.go)
							{Name: "cgroups", VolumeSource: corev1.VolumeSource{
								HostPath: &corev1.HostPathVolumeSource{Path: "/sys/fs/cgroup", Type: ptr(corev1.HostPathDirectory)},
							}},
							{Name: "state", VolumeSource: corev1.VolumeSource{
								HostPath: &corev1.HostPathVolumeSource{Path: StateDir, Type: ptr(corev1.HostPathDirectoryOrCreate)},
							}},
							// deploy mode: chaosloop looks at its members' files on the
							// node through the agent (package deploy's NodeFiles)
							{Name: "data", VolumeSource: corev1.VolumeSource{
								HostPath: &corev1.HostPathVolumeSource{Path: k3s.DataRoot, Type: ptr(corev1.HostPathDirectoryOrCreate)},
							}},
						},
					},
				},
				// one agent per node at a time: a new agent binds the NFQUEUEs
				// the old one held only once it is gone
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
			},
		},
	}, nil
}

func ptr[T any](v T) *T { return &v }
