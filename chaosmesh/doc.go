// Package chaosmesh writes a scenario's faults as a Chaos Mesh Workflow
// (chaos-mesh.org/v1alpha1, Chaos Mesh 2.x), for teams that schedule their
// chaos with Chaos Mesh rather than with chaosloop's lab.
//
// Chaos Mesh acts on pods, not on machines or networks, so a fault is
// first resolved on the scenario's topology (topology.State: which nodes
// lose power, which nodes can no longer reach each other, as analyze and
// the lab judge it) and then expressed on the pods of those nodes:
//
//	scenario fault                    Chaos Mesh                                    exact?
//	power-off node|rack|site|feed     PodChaos pod-failure, every pod on the        no: the nodes keep running;
//	                                  nodes that lose power (nodes: [...])          pods stop gracefully
//	destroy node|rack|site            the same                                      no: and no disk is wiped
//	isolate node|rack|site|switch|link NetworkChaos partition, direction both,      pods only (see below)
//	                                  pods on each cut-off group of nodes vs the
//	                                  pods on the other nodes that are up
//	latency link                      NetworkChaos delay (netem with loss; loss     pods only
//	                                  alone: loss), pods of one site vs the other's
//	latency node                      the same, pods on the node vs the others      pods only
//	kill service member               PodChaos container-kill (SIGKILL) of the      the kubelet restarts it at
//	                                  member's pods                                 once, not after 'for'
//	pause service member              NetworkChaos partition of the member's pods   no: cut off, not frozen
//	                                  from everything
//
// A member's pods are chaosloop's kind backend's (kindlab): namespace
// Options.Namespace, labels chaosloop.io/service and chaosloop.io/member,
// container "main". Clusters chaosloop attached to but did not deploy
// label their pods their own way: edit the selectors. service/NAME (no
// member) becomes mode "one" over the service's pods, as chaosloop draws a
// member at random; service/NAME/leader too, Chaos Mesh knowing no leader.
//
// Schedule: the workflow starts at the scenario's time zero (the end of
// its warmup: apply it when the load has warmed up). Faults that do not
// overlap run one after the other in a Serial branch, a Suspend template
// waiting out each gap ('at'); overlapping faults run in Parallel
// branches; each chaos template's deadline is the fault's 'for' (without
// one, until the end of the scenario's load, else until the workflow is
// deleted). Chaos Mesh's own reconcile latency makes each offset late by
// up to a few seconds.
//
// Each fault is resolved alone: two feed (or switch) faults that together
// darken (or cut off) a rack, each harmless alone, inject nothing. A fault
// that injects nothing is left out with a warning.
//
// Chaos templates carry no metadata, so what chaosloop would really do, and
// how the Chaos Mesh form differs, are annotations of the Workflow, one
// pair per fault: chaosloop.io/fault.fN and chaosloop.io/approximation.fN,
// N being the fault's index in the scenario (its templates are named
// fN-...). See docs/chaos-mesh-export.md.
package chaosmesh
