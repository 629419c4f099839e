// Command skypanel runs SkyPanel's control plane: `api`, `worker`, `migrate`, and `dev`, the
// whole platform on one machine (Postgres, Temporal, API, worker and a local node agent).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: skypanel <command> [flags]

commands:
  dev       run the whole platform locally (Postgres, Temporal dev server, API, worker, node agent)
  api       serve the REST API
  worker    run the control-plane Temporal worker (workflows + state activities)
  migrate   apply database migrations and exit
  secrets   manage the secret keyring: new-key, rotate, reencrypt

Run 'skypanel <command> -h' for the command's flags.`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger()
	slog.SetDefault(log)

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "dev":
		err = runDev(ctx, log, args)
	case "api":
		err = runAPI(ctx, log, args)
	case "worker":
		err = runWorker(ctx, log, args)
	case "migrate":
		err = runMigrate(ctx, log, args)
	case "secrets":
		err = runSecrets(ctx, log, args)
	case "-h", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s\n", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("skypanel: " + err.Error())
		os.Exit(1)
	}
}

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
