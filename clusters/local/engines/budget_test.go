package engines

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWithMargin(t *testing.T) {
	require.Equal(t, Budget{Budget: 7 * time.Second, Derivation: "x; + 5 s margin"}, WithMargin(2*time.Second, "x"))
	require.Equal(t, Budget{Budget: 22500 * time.Millisecond, Derivation: "y; + 50%"}, WithMargin(15*time.Second, "y"))
}
