package docstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
)

// patroniNode is Patroni's GET /patroni.
type patroniNode struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	Server   int    `json:"server_version"`
	Xlog     struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
	Replication []struct {
		Name      string `json:"application_name"`
		State     string `json:"state"`
		SyncState string `json:"sync_state"`
	} `json:"replication"`
}

// patroniCluster is Patroni's GET /cluster (its view of the DCS).
type patroniCluster struct {
	Members []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		State    string `json:"state"`
		Host     string `json:"host"`
		Timeline int    `json:"timeline"`
		Lag      any    `json:"lag"` // bytes, or "unknown"
	} `json:"members"`
}

// patroniGet reads one Patroni REST resource with a short timeout: Status
// must stay cheap even with members down or frozen.
func patroniGet[T any](ctx context.Context, c *engines.Cluster, m engines.Member, path string) (*T, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.AddrPort(PatroniPort).String()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient(c, m).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// /patroni answers 503 for a replica, with the same body; any status
	// with a JSON body is an answer.
	v := new(T)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("%s%s: %s: %w", m.Name, path, resp.Status, err)
	}
	return v, nil
}

func (e *Engine) waitLeaderAndSync(ctx context.Context, c *engines.Cluster) error {
	return engines.WaitFor(ctx, startTimeout, 300*time.Millisecond, c.Service+": Patroni leader, sync standby, all members running",
		func(ctx context.Context) error {
			var last error
			for _, m := range c.Members {
				cl, err := patroniGet[patroniCluster](ctx, c, m, "/cluster")
				if err != nil {
					last = err
					continue
				}
				var leader, sync bool
				up := 0
				for _, cm := range cl.Members {
					running := cm.State == "running" || cm.State == "streaming"
					leader = leader || (cm.Role == RoleLeader && running)
					sync = sync || (cm.Role == RoleSyncStandby && running)
					if running {
						up++
					}
				}
				// Every member, not only the two a commit needs: a
				// scenario starts from a whole cluster.
				if leader && sync && up == len(c.Members) {
					return nil
				}
				last = fmt.Errorf("cluster as seen by %s: %+v", m.Name, cl.Members)
			}
			return last
		})
}

// Status reports each member from its Patroni REST API and FerretDB port.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	st := engines.Status{Engine: "docstore", Version: "FerretDB " + FerretDBVersion + " on Patroni/PostgreSQL 15", Members: make([]engines.MemberStatus, len(c.Members))}
	nodes := make([]*patroniNode, len(c.Members))
	nodeErrs := make([]error, len(c.Members))
	clusters := make([]*patroniCluster, len(c.Members))
	clusterErrs := make([]error, len(c.Members))
	ferretUp := make([]bool, len(c.Members))
	ferretErrs := make([]error, len(c.Members))
	var wg sync.WaitGroup
	// All probes at once: a frozen member costs one timeout, not one per
	// probe and member.
	for i, m := range c.Members {
		wg.Go(func() { nodes[i], nodeErrs[i] = patroniGet[patroniNode](ctx, c, m, "/patroni") })
		wg.Go(func() { clusters[i], clusterErrs[i] = patroniGet[patroniCluster](ctx, c, m, "/cluster") })
		wg.Go(func() {
			ferretErrs[i] = dial(ctx, c, m, FerretDBPort)
			ferretUp[i] = ferretErrs[i] == nil
		})
	}
	wg.Wait()
	// The DCS view of the member that is primary by its own account is the
	// authoritative one, and of two such (an isolated old leader not yet
	// demoted, and the new one) the newer timeline's; otherwise any view.
	var view *patroniCluster
	viewTL := -1
	for i, n := range nodes {
		if clusters[i] == nil {
			continue
		}
		if n != nil && (n.Role == "master" || n.Role == "primary") && n.Timeline > viewTL {
			view, viewTL = clusters[i], n.Timeline
		} else if view == nil {
			view = clusters[i]
		}
	}
	leaderIdx, hasSync := -1, false
	for i, m := range c.Members {
		ms := engines.MemberStatus{Index: i, Name: m.Name}
		n := nodes[i]
		var details []string
		if n != nil {
			ms.Up = n.State == "running"
			details = append(details, "postgres "+n.State, "timeline "+strconv.Itoa(n.Timeline))
		} else {
			details = append(details, "patroni not answering")
		}
		// A process that runs, or whose running could not be found out
		// (an API server that did not answer: engines.Liveness), and ran
		// out of time answering is no evidence.
		ms.TimedOut = mayRun(ctx, c, procName(m, "patroni")) && (lab.IsTimeout(nodeErrs[i]) || lab.IsTimeout(clusterErrs[i])) ||
			mayRun(ctx, c, procName(m, "ferretdb")) && lab.IsTimeout(ferretErrs[i])
		if view != nil {
			for _, cm := range view.Members {
				if cm.Name != m.Name {
					continue
				}
				ms.Role = cm.Role
				if cm.Role != RoleLeader {
					details = append(details, fmt.Sprintf("lag %v", cm.Lag))
				}
			}
		}
		if ferretUp[i] {
			details = append(details, "ferretdb up")
		} else {
			details = append(details, "ferretdb down")
		}
		lagOK := true
		if view != nil && ms.Role != RoleLeader {
			for _, cm := range view.Members {
				if cm.Name == m.Name {
					lag, isNum := cm.Lag.(float64)
					lagOK = isNum && lag < 16<<20
				}
			}
		}
		ms.Healthy = ms.Up && ferretUp[i] && ms.Role != "" && lagOK
		switch ms.Role {
		case RoleLeader:
			if ms.Up {
				leaderIdx = i
			}
		case RoleSyncStandby:
			hasSync = hasSync || ms.Up
		}
		ms.Detail = strings.Join(details, ", ")
		st.Members[i] = ms
	}
	// synchronous_mode_strict: with no sync standby, commits wait forever.
	// Any running FerretDB reaches the leader (target_session_attrs).
	st.Writable = leaderIdx >= 0 && hasSync && slices.Contains(ferretUp, true)
	return st, nil
}

// mayRun: the named process runs, or whether it does is unknown.
func mayRun(ctx context.Context, c *engines.Cluster, name string) bool {
	alive, err := c.Alive(ctx, name)
	return alive || err != nil
}

func dial(ctx context.Context, c *engines.Cluster, m engines.Member, port uint16) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := dialer(c, m).DialContext(ctx, "tcp", m.AddrPort(port).String())
	if err != nil {
		return err
	}
	return conn.Close()
}

// ping runs the MongoDB ping command on member i's FerretDB; FerretDB
// answers it only when it reaches PostgreSQL.
func (e *Engine) ping(ctx context.Context, c *engines.Cluster, i int) error {
	cl, err := e.connect(ctx, c, i)
	if err != nil {
		return err
	}
	defer cl.Disconnect(context.Background()) //nolint:errcheck
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return cl.Ping(ctx, nil)
}

func (e *Engine) connect(ctx context.Context, c *engines.Cluster, i int) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(e.Endpoints(c)[i]).
		SetServerSelectionTimeout(probeTimeout).SetConnectTimeout(probeTimeout)
	opts.SetDialer(dialer(c, c.Members[i]))
	return mongo.Connect(ctx, opts)
}
