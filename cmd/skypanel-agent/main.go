// Command skypanel-agent runs on every worker node: it registers the node with the control
// plane once, then executes the node's Temporal activities (git clone, Docker, nginx).
// See docs/node-agent.md.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	workernode "github.com/skypanel/skypanel/worker-node"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	cfg, err := workernode.ParseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		slog.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := workernode.Run(ctx, cfg); err != nil {
		slog.Error("agent failed", "err", err)
		os.Exit(1)
	}
}
