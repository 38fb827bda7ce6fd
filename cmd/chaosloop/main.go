// Command chaosloop tells whether a Mojaloop deployment survives real
// data-centre failures. See `chaosloop --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/cli"
	"github.com/chaosloop/chaosloop/cmd/chaosloop/internal/root"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := root.Run(ctx, cli.Std(), os.Args[1:])
	stop()
	os.Exit(code)
}
