// Command chaosloop tells whether a Mojaloop deployment survives real
// data-centre failures. See `chaosloop --help`.
package main

import (
	"context"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/crash"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/versioncmd"
)

// quietRedis drops go-redis's own log lines (Sentinel chatter on every
// failover): its logger is a package global, so it can only be set here;
// what matters of Redis is recorded in the run's history.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func main() {
	// A supervising parent turns every crash into exit status 1 with a
	// report; this process is either that parent or its child.
	version := func() string { return versioncmd.Read().Short() }
	if code, ok := crash.Supervise(os.Args[1:], os.Stderr, version); ok {
		os.Exit(code)
	}
	forwarded := crash.Attach()
	redis.SetLogger(quietRedis{})
	ctx, stop := cli.NotifyContext(context.Background(), forwarded)
	code := root.Run(ctx, cli.Std(), os.Args[1:])
	stop()
	os.Exit(code)
}
