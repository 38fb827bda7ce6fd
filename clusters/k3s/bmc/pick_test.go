package bmc

import (
	"testing"

	"github.com/stmcginnis/gofish/schemas"
	"github.com/stretchr/testify/require"
)

func system(id string) *schemas.ComputerSystem {
	s := &schemas.ComputerSystem{}
	s.ID, s.ODataID = id, "/redfish/v1/Systems/"+id
	return s
}

// The system an inventory names, or the BMC's only one.
func TestPickSystem(t *testing.T) {
	one := []*schemas.ComputerSystem{system("1")}
	two := []*schemas.ComputerSystem{system("1"), system("2")}
	b := BMC{Node: "n1", Address: "https://bmc"}

	got, err := pickSystem(b, one)
	require.NoError(t, err)
	require.Equal(t, "/redfish/v1/Systems/1", got.ODataID)

	b.System = "/redfish/v1/Systems/2/"
	got, err = pickSystem(b, two)
	require.NoError(t, err)
	require.Equal(t, "2", got.ID)

	b.System = ""
	_, err = pickSystem(b, two)
	require.EqualError(t, err, "node n1: the Redfish service at https://bmc has 2 systems; name one with system (an Id or @odata.id): /redfish/v1/Systems/1, /redfish/v1/Systems/2")
	_, err = pickSystem(b, nil)
	require.EqualError(t, err, "node n1: the Redfish service at https://bmc lists no systems")
}
