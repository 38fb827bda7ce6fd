package kind

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/clusters/kind/kindlab"
	"github.com/chaosloop/chaosloop/lab/labtest"
	"github.com/chaosloop/chaosloop/topology"
)

// The conformance suite's scenario has no control-plane pool: its etcd
// service's nodes are the control planes, and it is the API service.
func TestAPIServiceWithoutAControlPlanePool(t *testing.T) {
	sc, err := labtest.Parse("apisvc", labtest.Source("apisvc"))
	require.NoError(t, err)
	topo, err := topology.Build(sc)
	require.NoError(t, err)
	var cps []string
	for _, n := range kindlab.ControlPlaneNodes(topo) {
		cps = append(cps, n.Name)
	}
	require.Equal(t, []string{"n1", "n2", "n3"}, cps)
	require.Equal(t, labtest.Judged, kindlab.APIService(topo))
	require.NoError(t, Fits(sc))
}

// A document store on a control-plane node would need the etcd ports the
// cluster's own etcd holds there: refused before anything starts.
func TestFitsRefusesEtcdPortsOnAControlPlane(t *testing.T) {
	src := `name: clash
sites:
  - name: a
    racks:
      - {name: r1, power: [p1], switches: [s1], nodes: [{name: cp, pools: [K3S-CONTROL-PLANE, DB]}, {name: d1, pools: [DB]}, {name: d2, pools: [DB]}]}
services:
  - {name: k3s-etcd, kind: etcd, replicas: 1, pool: K3S-CONTROL-PLANE}
  - {name: docs, kind: mongodb, replicas: 3, pool: DB}
`
	sc, err := labtest.Parse("clash", src)
	require.NoError(t, err)
	err = Fits(sc)
	require.ErrorContains(t, err, "service docs has a member on control-plane node cp")
}

func TestFailedChecks(t *testing.T) {
	body := "[+]ping ok\n[-]etcd failed: reason withheld\n[+]log ok\nreadyz check failed\n"
	require.Equal(t, "etcd failed: reason withheld", failedChecks(body))
	require.Equal(t, "forbidden", failedChecks("forbidden\n"))
}
