package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
)

const secretsUsage = `usage: skypanel secrets <command> [flags]

commands:
  new-key     print a new keyring entry (id:base64); put it first in SKYPANEL_SECRET_KEY to make it primary
  rotate      add a new primary key to a keyring file (--secret-key-file, default .data/secret.key)
  reencrypt   re-encrypt every stored secret under the primary key (needs DATABASE_URL)

Rotation: make a new key primary (new-key or rotate) on every process, restart them, run
reencrypt, then remove the old key. See docs/operations.md.`

func runSecrets(ctx context.Context, log *slog.Logger, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, secretsUsage)
		return errors.New("secrets: a command is required")
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "new-key":
		id, err := secrets.NewKeyID(time.Now())
		if err != nil {
			return err
		}
		entry, err := secrets.NewKeyEntry(id)
		if err != nil {
			return err
		}
		fmt.Println(entry)
		return nil
	case "rotate":
		fs := flag.NewFlagSet("secrets rotate", flag.ExitOnError)
		file := fs.String("secret-key-file", envOr("SKYPANEL_SECRET_KEY_FILE", ".data/secret.key"), "the keyring file")
		fs.Parse(args) //nolint:errcheck // ExitOnError
		id, err := secrets.RotateKeyFile(*file)
		if err != nil {
			return err
		}
		log.Info("new primary key added; restart every process, then run `skypanel secrets reencrypt` (skypanel dev does it when it starts)",
			"file", *file, "key_id", id)
		return nil
	case "reencrypt":
		cfg, err := parseControlConfig(log, "secrets reencrypt", args, true, nil)
		if err != nil {
			return err
		}
		st, closeDB, err := openStore(ctx, log, cfg)
		if err != nil {
			return err
		}
		defer closeDB()
		_, err = reencryptSecrets(ctx, log, st, cfg.keyring)
		return err
	case "-h", "--help", "help":
		fmt.Println(secretsUsage)
		return nil
	}
	return fmt.Errorf("secrets: unknown command %q\n\n%s", args[0], secretsUsage)
}

// reencryptSecrets moves every stored secret not yet under the keyring's primary key onto it.
func reencryptSecrets(ctx context.Context, log *slog.Logger, st *db.Store, ring *secrets.Keyring) (int, error) {
	res, err := st.ReencryptSecrets(ctx, ring)
	if err != nil {
		return res.Moved, err
	}
	log.Info("secrets re-encrypted under the primary key", "key_id", ring.PrimaryID(), "re_encrypted", res.Moved, "stored", res.Stored, "changed_meanwhile", res.Skipped)
	return res.Moved, nil
}
