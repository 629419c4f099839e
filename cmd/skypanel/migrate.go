package main

import (
	"context"
	"flag"
	"log/slog"
)

func runMigrate(ctx context.Context, log *slog.Logger, args []string) error {
	var cfg controlConfig
	fs := flag.NewFlagSet("migrate", flag.ExitOnError)
	cfg.bind(fs, 0)
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if err := cfg.validate(); err != nil {
		return err
	}
	_, closeDB, err := openStore(ctx, log, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	closeDB()
	log.Info("database is up to date")
	return nil
}
