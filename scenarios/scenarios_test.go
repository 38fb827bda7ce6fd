package scenarios_test

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaosloop/chaosloop/scenarios"
)

// Each testdata/invalid-*.yaml lists the exact problems it must produce in
// "# want: LINE:COL: MESSAGE" comments, in order; every one is reported at
// once.
func TestInvalidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wants(t, f)
			require.NotEmpty(t, want, "file has no '# want:' lines")
			_, err := scenarios.Parse(f)
			var errs scenarios.Errors
			require.True(t, errors.As(err, &errs), "want scenario errors, got %v", err)
			var got []string
			for _, e := range errs {
				require.Equal(t, f, e.File)
				got = append(got, strings.TrimPrefix(e.Error(), f+":"))
			}
			require.Equal(t, want, got)
		})
	}
}

func wants(t *testing.T, path string) []string {
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			out = append(out, w)
		}
	}
	return out
}

func TestValidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	examples, _ := filepath.Glob("*.yaml")
	files = append(files, examples...)
	require.GreaterOrEqual(t, len(examples), 5, "the example scenarios")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			_, err := scenarios.Parse(f)
			require.NoError(t, err)
		})
	}
}

func TestDefaultsDoNotMutate(t *testing.T) {
	raw, err := scenarios.ReadFile("testdata/valid-minimal.yaml")
	require.NoError(t, err)
	require.Nil(t, raw.Expect)
	d := raw.WithDefaults()
	require.Nil(t, raw.Expect, "WithDefaults must not change its receiver")
	require.Equal(t, "held", d.Expect.Quorum)
	require.NoError(t, d.Validate())
	before := *d.Expect
	require.NoError(t, d.Validate())
	require.Equal(t, before, *d.Expect, "Validate must not change the scenario")
}

func TestServiceDefaults(t *testing.T) {
	sc, err := scenarios.Decode("x.yaml", []byte(`
name: d
sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: a, pools: [K]}, {name: b, pools: [K]}]}]}]
services:
  - {name: k, kind: kafka, pool: K, replicas: 2}
  - {name: m, kind: mysql, pool: K, placement: [b, a]}
  - {name: z, kind: zookeeper, pool: K, replicas: 1}
`))
	require.NoError(t, err)
	d := sc.WithDefaults()
	k, m := d.Services[0], d.Services[1]
	require.Equal(t, 2, *k.ReplicationFactor, "min(3, replicas)")
	require.Equal(t, 2, *k.MinInSync)
	require.Equal(t, 12, *k.Partitions)
	require.Equal(t, "rack", k.Spread)
	require.Equal(t, "group", m.Replication)
	require.Equal(t, 2, *m.Replicas, "replicas default to the placement's length")
	require.Nil(t, d.Services[2].ReplicationFactor)
	require.NoError(t, d.Validate())
}

func TestTargets(t *testing.T) {
	for in, want := range map[string]string{
		"link/dc2/dc1":      "link/dc1/dc2",
		"rack/dc1/r1":       "rack/dc1/r1",
		"service/kafka/0":   "service/kafka/0",
		"service/db/leader": "service/db/leader",
		"service/db":        "service/db",
		"feed/pdu-a":        "feed/pdu-a",
	} {
		tg, err := scenarios.ParseTarget(in)
		require.NoError(t, err, in)
		require.Equal(t, want, tg.String())
	}
	for _, bad := range []string{"", "rack/x", "link/a/a", "service/db/-1", "service/db/01", "galaxy/x", "node//x", "node/a/b"} {
		_, err := scenarios.ParseTarget(bad)
		require.Error(t, err, bad)
	}
}

func TestFailover(t *testing.T) {
	const base = `
name: f
sites: [{name: s, racks: [{name: r, power: [p], switches: [w], nodes: [{name: a, pools: [K]}]}]}]
services:
  - {name: db, kind: stateless, pool: K, replicas: 1}
  - {name: web, kind: stateless, pool: K, replicas: 1}
`
	parse := func(expect string) *scenarios.Scenario {
		raw, err := scenarios.Decode("f.yaml", []byte(base+expect))
		require.NoError(t, err)
		d := raw.WithDefaults()
		require.NoError(t, d.Validate())
		return d
	}

	d := parse("")
	_, ok := d.Expect.FailoverFor("db")
	require.False(t, ok, "no failover: the engine default applies")
	var nilExpect *scenarios.Expect
	_, ok = nilExpect.FailoverFor("db")
	require.False(t, ok)

	d = parse("expect: {failover: 20s}\n")
	for _, sv := range []string{"db", "web"} {
		got, ok := d.Expect.FailoverFor(sv)
		require.True(t, ok)
		require.Equal(t, 20*time.Second, got)
	}

	d = parse("expect:\n  failover: {db: 1m30s}\n")
	got, ok := d.Expect.FailoverFor("db")
	require.True(t, ok)
	require.Equal(t, 90*time.Second, got)
	_, ok = d.Expect.FailoverFor("web")
	require.False(t, ok, "a service the map leaves out gets the default")

	// Clone (and so WithDefaults) copies the map; Validate changes nothing.
	c := d.Clone()
	require.Equal(t, d.Expect.Failover, c.Expect.Failover)
	c.Expect.Failover.Services["web"] = scenarios.Duration{Duration: time.Second}
	_, ok = d.Expect.FailoverFor("web")
	require.False(t, ok, "the clone shares no map with the original")
	before := d.Clone()
	require.NoError(t, d.Validate())
	require.Equal(t, before.Expect, d.Expect)
}
