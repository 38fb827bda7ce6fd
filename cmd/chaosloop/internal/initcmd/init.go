// Package initcmd implements `chaosloop init`: a commented starter
// scenario, laid out from a few flags, that passes `validate`.
package initcmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/topology/pools"
)

// DefaultPools are the pools of the smallest deployment that carries a
// transfer: the control plane's etcd, Kafka, the central ledger's database
// and its handlers.
var DefaultPools = []string{"K3S-CONTROL-PLANE", "KAFKA-DATA-PLANE", "RDBMS-CENTRAL-LEDGER-LIVE", "CORE-HANDLERS"}

// Limits of the layout init writes: a starter, not an estate generator.
const (
	maxSites = 26
	maxRacks = 64
	maxNodes = 5000
)

// Options are init's flags.
type Options struct {
	Name         string
	Sites        int
	RacksPerSite int
	NodesPerRack int // 0: as few as the pools need
	Pools        []string
}

// NewCommand returns the init command.
func NewCommand(env *cli.Env) *cobra.Command {
	o := Options{Name: "my-switch", Sites: 3, RacksPerSite: 1, Pools: DefaultPools}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Print a commented starter scenario laid out from a few flags",
		Long: `Init prints a starter scenario file on standard output: --sites sites of
--racks-per-site racks each (every rack with two power feeds and a top-of-rack
switch of its own), one service per pool of --pools (the seed's node pools,
sized by the seed's Initial sizes, three members each, one pool per node),
spread over the sites and racks, plus a load, a fault and expectations for
'chaosloop run'. It passes 'chaosloop validate'; edit it to match your
deployment.

--nodes-per-rack defaults to as few as the pools need; a larger number adds
nodes to the pools. --pools all takes every pool of the seed.`,
		Example: `  chaosloop init > my-switch.yaml
  chaosloop init --name two-dc --sites 2 --racks-per-site 2 | chaosloop validate -
  chaosloop init --sites 3 --pools K3S-CONTROL-PLANE,KAFKA-CONTROL-PLANE,KAFKA-DATA-PLANE,RDBMS-CENTRAL-LEDGER-LIVE,CORE-HANDLERS
  chaosloop init --pools all --racks-per-site 3 | chaosloop analyze -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := plan(o)
			if err != nil {
				return err
			}
			return write(env.Out, o, l)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", o.Name, "the scenario's name (a DNS label: a-z, 0-9, -)")
	f.IntVar(&o.Sites, "sites", o.Sites, fmt.Sprintf("number of sites (data centres), 1-%d", maxSites))
	f.IntVar(&o.RacksPerSite, "racks-per-site", o.RacksPerSite, fmt.Sprintf("racks in each site, 1-%d", maxRacks))
	f.IntVar(&o.NodesPerRack, "nodes-per-rack", 0, "nodes in each rack (0: as few as the pools need)")
	f.StringSliceVar(&o.Pools, "pools", o.Pools, "the seed's node pools to deploy, comma-separated, or all")
	_ = cmd.RegisterFlagCompletionFunc("pools", completePools)
	for _, n := range []string{"name", "sites", "racks-per-site", "nodes-per-rack"} {
		_ = cmd.RegisterFlagCompletionFunc(n, cobra.NoFileCompletions)
	}
	return cmd
}

func completePools(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	// A comma-separated list: complete its last element.
	done, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []string
	for _, p := range append([]string{"all"}, poolNames()...) {
		if strings.HasPrefix(p, strings.ToUpper(last)) || strings.HasPrefix(p, last) {
			out = append(out, done+p)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

func poolNames() []string {
	var names []string
	for _, p := range pools.Seed().Pools {
		names = append(names, p.Name)
	}
	return names
}

// selectPools resolves --pools against the seed (any case), every
// unknown name reported at once.
func selectPools(names []string) ([]*pools.Pool, error) {
	seed := pools.Seed()
	if len(names) == 1 && strings.EqualFold(names[0], "all") {
		names = poolNames()
	}
	var out []*pools.Pool
	var unknown []string
	for _, n := range names {
		p := seed.Pool(strings.ToUpper(strings.TrimSpace(n)))
		switch {
		case p == nil:
			unknown = append(unknown, n)
		case !slices.Contains(out, p):
			out = append(out, p)
		}
	}
	if len(unknown) > 0 {
		return nil, cli.Usagef("--pools: no pool %s in the seed (one of: all, %s)", strings.Join(unknown, ", "), strings.Join(poolNames(), ", "))
	}
	if len(out) == 0 {
		return nil, cli.Usagef("--pools: name at least one pool")
	}
	return out, nil
}
