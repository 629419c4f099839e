package main

import (
	"context"
	"log/slog"
)

func runMigrate(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, err := parseControlConfig(log, "migrate", args, false, nil)
	if err != nil {
		return err
	}
	_, closeDB, err := openStore(ctx, log, cfg)
	if err != nil {
		return err
	}
	closeDB()
	log.Info("database is up to date")
	return nil
}
