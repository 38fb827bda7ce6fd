package redis

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chaosloop/chaosloop/clusters/local/engines"
	"github.com/chaosloop/chaosloop/lab"
)

// options reach member m's redis-server (what "redis") or Sentinel
// ("sentinel"): through its unix socket when the member's files are on
// this machine, over TCP with the cluster's dialer when they are on a
// real cluster's node.
func options(c *engines.Cluster, m engines.Member, what string, d time.Duration) *goredis.Options {
	o := &goredis.Options{
		Network: "unix", Addr: sock(m, what), Protocol: 2, DisableIdentity: true,
		DialTimeout: d, ReadTimeout: d, WriteTimeout: d,
		PoolSize: 1, MaxRetries: -1,
	}
	if c.Remote() {
		port := uint16(Port)
		if what == "sentinel" {
			port = SentinelPort
		}
		dial := c.Dialer()
		o.Network, o.Addr = "tcp", m.AddrPort(port).String()
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) { return dial(ctx, network, addr) }
	}
	return o
}

func client(c *engines.Cluster, m engines.Member, d time.Duration) *goredis.Client {
	return goredis.NewClient(options(c, m, "redis", d))
}

func sentinelClient(c *engines.Cluster, m engines.Member, d time.Duration) *goredis.SentinelClient {
	return goredis.NewSentinelClient(options(c, m, "sentinel", d))
}

// replInfo is a redis-server's INFO replication.
type replInfo struct {
	Role       string // master, slave
	MasterHost string
	LinkUp     bool
	Replicas   int
	Offset     int64
}

func info(ctx context.Context, c *engines.Cluster, m engines.Member) (replInfo, error) {
	cl := client(c, m, statusWait)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	s, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return replInfo{}, err
	}
	var r replInfo
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		switch k {
		case "role":
			r.Role = v
		case "master_host":
			r.MasterHost = v
		case "master_link_status":
			r.LinkUp = v == "up"
		case "connected_slaves":
			r.Replicas, _ = strconv.Atoi(v)
		case "master_repl_offset":
			r.Offset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r, nil
}

// sentinelView is what one Sentinel says.
type sentinelView struct {
	Primary string // address of the primary
	// Peers and Replicas it knows and does not consider down.
	Peers, Replicas []string
}

func sentinel(ctx context.Context, c *engines.Cluster, m engines.Member, full bool) (sentinelView, error) {
	sc := sentinelClient(c, m, statusWait)
	defer sc.Close()
	ctx, cancel := context.WithTimeout(ctx, statusWait)
	defer cancel()
	var v sentinelView
	addr, err := sc.GetMasterAddrByName(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	if len(addr) > 0 {
		v.Primary = addr[0]
	}
	if !full {
		return v, nil
	}
	up := func(ms []map[string]string) []string {
		var out []string
		for _, x := range ms {
			f := x["flags"]
			if !strings.Contains(f, "s_down") && !strings.Contains(f, "disconnected") {
				out = append(out, x["ip"])
			}
		}
		return out
	}
	peers, err := sc.Sentinels(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	reps, err := sc.Replicas(ctx, MasterName(c)).Result()
	if err != nil {
		return v, err
	}
	v.Peers, v.Replicas = up(peers), up(reps)
	return v, nil
}

// currentPrimary is the member the answering Sentinels name most (ok false
// when none answers). Without Sentinels, the newest Sentinel config says.
func (e *Engine) currentPrimary(ctx context.Context, c *engines.Cluster) (int, bool) {
	votes := map[string]int{}
	for _, m := range c.Members {
		if !alive(ctx, c, sentinelName(m)) {
			continue
		}
		if v, err := sentinel(ctx, c, m, false); err == nil && v.Primary != "" {
			votes[v.Primary]++
		}
	}
	best, n := "", 0
	for a, k := range votes {
		if k > n || (k == n && a < best) {
			best, n = a, k
		}
	}
	for i, m := range c.Members {
		if best != "" && m.Addr.String() == best {
			return i, true
		}
	}
	return -1, false
}

// configuredPrimary reads the primary from the Sentinel configs on disk
// (the one with the highest config epoch), or member 0 when there are none.
func configuredPrimary(ctx context.Context, c *engines.Cluster) int {
	primary, epoch := 0, int64(-1)
	for _, m := range c.Members {
		b, err := c.FS().ReadFile(ctx, m, sentinelConf(m))
		if err != nil {
			continue
		}
		addr, ep := "", int64(0)
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == "sentinel" && f[1] == "monitor" && f[2] == MasterName(c) {
				addr = f[3]
			}
			if len(f) >= 4 && f[0] == "sentinel" && f[1] == "config-epoch" && f[2] == MasterName(c) {
				ep, _ = strconv.ParseInt(f[3], 10, 64)
			}
		}
		for i, p := range c.Members {
			if p.Addr.String() == addr && ep > epoch {
				primary, epoch = i, ep
			}
		}
	}
	return primary
}

// Status samples every member's redis-server and Sentinel over their
// sockets. A member is Healthy when it is the primary the Sentinels name
// (primary) or is linked to it (replica). Writable: that primary is up.
func (e *Engine) Status(ctx context.Context, c *engines.Cluster) (engines.Status, error) {
	s := engines.Status{Engine: "redis", Members: make([]engines.MemberStatus, len(c.Members))}
	type probe struct {
		redisUp, sentUp bool
		info            replInfo
		infoErr, sErr   error
		// unknown: whether redis-server runs could not be found out
		unknown error
		view    sentinelView
	}
	probes := make([]probe, len(c.Members))
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() {
			p := &probes[i]
			if p.redisUp, p.unknown = c.Alive(ctx, redisName(m)); p.redisUp {
				p.info, p.infoErr = info(ctx, c, m)
			}
			if p.sentUp = alive(ctx, c, sentinelName(m)); p.sentUp {
				p.view, p.sErr = sentinel(ctx, c, m, false)
			}
		})
	}
	wg.Wait()
	votes := map[string]int{}
	for _, p := range probes {
		if p.sentUp && p.sErr == nil && p.view.Primary != "" {
			votes[p.view.Primary]++
		}
	}
	agreed, n := "", 0
	for a, k := range votes {
		if k > n || (k == n && a < agreed) {
			agreed, n = a, k
		}
	}
	for i, m := range c.Members {
		p := probes[i]
		ms := engines.MemberStatus{Index: i, Name: m.Name}
		var d []string
		switch {
		case p.unknown != nil:
			d = append(d, "whether redis runs is unknown: "+p.unknown.Error())
			ms.TimedOut = true
		case !p.redisUp:
			d = append(d, "redis not running")
		case p.infoErr != nil:
			d = append(d, "redis not answering: "+p.infoErr.Error())
			ms.TimedOut = lab.IsTimeout(p.infoErr)
		default:
			ms.Up = true
			r := p.info
			if r.Role == "master" {
				ms.Role = "primary"
				ms.Healthy = agreed == "" || agreed == m.Addr.String()
				d = append(d, fmt.Sprintf("role=primary replicas=%d offset=%d", r.Replicas, r.Offset))
				if ms.Healthy {
					s.Writable = true
				}
			} else {
				ms.Role = "replica"
				link := "down"
				if r.LinkUp {
					link = "up"
				}
				ms.Healthy = r.LinkUp && (agreed == "" || agreed == r.MasterHost)
				d = append(d, fmt.Sprintf("role=replica master=%s link=%s offset=%d", r.MasterHost, link, r.Offset))
			}
		}
		switch {
		case !p.sentUp:
			d = append(d, "sentinel not running")
		case p.sErr != nil:
			d = append(d, "sentinel not answering: "+p.sErr.Error())
		default:
			d = append(d, "sentinel names "+p.view.Primary)
		}
		ms.Detail = strings.Join(d, "; ")
		s.Members[i] = ms
	}
	return s, nil
}
