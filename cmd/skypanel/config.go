package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skypanel/skypanel/apiserver/ghconnect"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/activities/control/certs"
	"github.com/skypanel/skypanel/activities/control/registry"
	"github.com/skypanel/skypanel/temporal/codec"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// controlConfig is what api, worker and dev share: where state lives and how apps are named.
type controlConfig struct {
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	PlatformDomain    string
	AppURLScheme      string
	AppPublicPort     int
	AllowLoopbackGit  bool
	KeepReleaseImages int
	// Registry is the platform registry's host:port as nodes reach it (the registry gate):
	// builds push there, nodes pull by digest. Empty: images stay on the node that built them
	// (no app can move).
	Registry string
	// RegistryUpstream is the registry itself, http(s)://host:port, where the control plane
	// deletes pruned images; empty: through Registry.
	RegistryUpstream string
	// BillingPeriod is how often apps are charged (an hour; tests use seconds).
	BillingPeriod time.Duration
	// Currency of the wallets (ISO 4217); plan prices are minor units of it.
	Currency string
	// SecretKeyFile holds the keyring when SKYPANEL_SECRET_KEY is unset (dev generates it).
	SecretKeyFile string
	// AllowPlaintextPayloads is the migration switch for histories recorded before encryption:
	// workers then read unencrypted payloads instead of refusing them. Off by default.
	AllowPlaintextPayloads bool
	// TemporalTLS is mutual TLS to the Temporal frontend (docker-compose.yml); off under dev.
	TemporalTLS temporalTLSConfig
	// ACME is automatic TLS for custom domains: the CA's directory (empty: off), the account's
	// contact, the backoff of failed attempts, and how often the certificates schedule checks.
	ACME             certs.Config
	CertificateCheck time.Duration
	// BackupDir is the filesystem store of database backups: the API writes what nodes upload
	// there, the control worker verifies it (both must reach the same directory).
	BackupDir string
	// MinBackupInterval is the shortest backup schedule a customer may ask for.
	MinBackupInterval time.Duration
	// FinalBackupRetention is how long a deleted database's final backup is kept.
	FinalBackupRetention time.Duration
	// S3 is the S3 backup store (none unless an endpoint or bucket is given); its secret key
	// comes from SKYPANEL_S3_SECRET_KEY or S3SecretKeyFile, never from a flag.
	S3              backups.S3Config
	S3SecretKeyFile string
	// DefaultBackupStore is the store of a database created without naming one.
	DefaultBackupStore string
	// GitHub is the platform's GitHub OAuth app; its client secret and the webhook secret come
	// from GITHUB_CLIENT_SECRET and GITHUB_WEBHOOK_SECRET or their files, never from a flag
	// value (a process list shows those). FrontendURL is where the OAuth callback returns.
	GitHub                  ghconnect.Config
	GitHubClientSecretFile  string
	GitHubWebhookSecretFile string
	FrontendURL             string
	githubWebhookSecret     []byte

	// keyring is loaded by loadKeyring: it seals env values and encrypts every Temporal payload.
	keyring *secrets.Keyring
	// backupStores are the backup stores, made by loadBackupStores.
	backupStores *backups.Stores
	// temporalTLS is TemporalTLS loaded (nil: plain gRPC, as to the dev server on loopback).
	temporalTLS *tls.Config
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(key), 64); err == nil {
		return v
	}
	return def
}

func (c *controlConfig) bind(fs *flag.FlagSet, defaultPublicPort int) {
	fs.StringVar(&c.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "Postgres URL (DATABASE_URL)")
	fs.StringVar(&c.TemporalAddress, "temporal-address", envOr("TEMPORAL_ADDRESS", sptemporal.DefaultAddress), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&c.TemporalNamespace, "temporal-namespace", envOr("TEMPORAL_NAMESPACE", sptemporal.DefaultNamespace), "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.PlatformDomain, "platform-domain", envOr("PLATFORM_DOMAIN", "apps.localhost"), "apps answer at <name>.<domain> (PLATFORM_DOMAIN)")
	fs.StringVar(&c.AppURLScheme, "app-url-scheme", envOr("APP_URL_SCHEME", "http"), "scheme of app URLs (APP_URL_SCHEME)")
	fs.IntVar(&c.AppPublicPort, "app-public-port", envInt("APP_PUBLIC_PORT", defaultPublicPort), "port in app URLs, 0 for the scheme's default (APP_PUBLIC_PORT)")
	fs.DurationVar(&c.BillingPeriod, "billing-period", envDuration("SKYPANEL_BILLING_PERIOD", billing.DefaultPeriod), "how often running apps are charged, prorated per second (SKYPANEL_BILLING_PERIOD)")
	fs.StringVar(&c.Currency, "currency", envOr("SKYPANEL_CURRENCY", db.DefaultCurrency), "currency of new wallets, ISO 4217; plan prices are its minor units (SKYPANEL_CURRENCY)")
	fs.StringVar(&c.SecretKeyFile, "secret-key-file", envOr("SKYPANEL_SECRET_KEY_FILE", ""), "file holding the secret keyring, used when SKYPANEL_SECRET_KEY is unset (SKYPANEL_SECRET_KEY_FILE)")
	fs.StringVar(&c.Registry, "registry", envOr("SKYPANEL_REGISTRY", ""), "the platform registry, host:port; builds push there and nodes pull by digest (SKYPANEL_REGISTRY)")
	fs.BoolVar(&c.AllowPlaintextPayloads, "allow-plaintext-payloads", os.Getenv(codec.AllowPlaintextEnv) == "1",
		"migration only: read Temporal payloads that are not encrypted (histories recorded before encryption) instead of refusing them ("+codec.AllowPlaintextEnv+"=1)")
	fs.StringVar(&c.RegistryUpstream, "registry-upstream", envOr("SKYPANEL_REGISTRY_UPSTREAM", ""),
		"the platform registry itself, e.g. http://registry:5000: the control plane deletes pruned images there, and the API's registry gate fronts it (SKYPANEL_REGISTRY_UPSTREAM)")
	c.TemporalTLS.bind(fs)
	fs.StringVar(&c.ACME.DirectoryURL, "acme-directory", envOr("SKYPANEL_ACME_DIRECTORY", ""),
		"ACME directory that issues the custom domains' certificates, e.g. https://acme-v02.api.letsencrypt.org/directory; empty: domains are served over HTTP (SKYPANEL_ACME_DIRECTORY)")
	fs.StringVar(&c.ACME.Email, "acme-email", envOr("SKYPANEL_ACME_EMAIL", os.Getenv("CERTBOT_EMAIL")),
		"contact of the platform's ACME account (SKYPANEL_ACME_EMAIL; CERTBOT_EMAIL is its old name)")
	fs.DurationVar(&c.ACME.RetryBase, "acme-retry-base", envDuration("SKYPANEL_ACME_RETRY_BASE", certs.DefaultRetryBase),
		"wait after a failed certificate attempt, doubled with each failure in a row up to 12h; 15m keeps within Let's Encrypt's 5 failed validations per host name per hour (SKYPANEL_ACME_RETRY_BASE)")
	fs.DurationVar(&c.CertificateCheck, "certificate-check-interval", envDuration("SKYPANEL_CERTIFICATE_CHECK_INTERVAL", 24*time.Hour),
		"how often the certificates schedule looks for certificates to issue, retry or renew (SKYPANEL_CERTIFICATE_CHECK_INTERVAL)")
	fs.DurationVar(&c.MinBackupInterval, "min-backup-interval", envDuration("SKYPANEL_MIN_BACKUP_INTERVAL", time.Hour),
		"the shortest interval of a database's backup schedule a customer may ask for (SKYPANEL_MIN_BACKUP_INTERVAL)")
	fs.DurationVar(&c.FinalBackupRetention, "final-backup-retention", envDuration("SKYPANEL_FINAL_BACKUP_RETENTION", backups.DefaultFinalBackupRetention),
		"how long a deleted database's final backup is kept (SKYPANEL_FINAL_BACKUP_RETENTION)")
	fs.StringVar(&c.BackupDir, "backup-dir", envOr("SKYPANEL_BACKUP_DIR", "/var/lib/skypanel/backups"),
		"the filesystem store of database backups, shared by the API and the control worker (SKYPANEL_BACKUP_DIR)")
	fs.StringVar(&c.S3.Endpoint, "s3-endpoint", envOr("SKYPANEL_S3_ENDPOINT", ""),
		"the S3 backup store's endpoint, http(s)://host[:port]; empty: no S3 store (SKYPANEL_S3_ENDPOINT)")
	fs.StringVar(&c.S3.Region, "s3-region", envOr("SKYPANEL_S3_REGION", "us-east-1"), "the S3 backup store's region (SKYPANEL_S3_REGION)")
	fs.StringVar(&c.S3.Bucket, "s3-bucket", envOr("SKYPANEL_S3_BUCKET", ""), "the S3 backup store's bucket, which must exist (SKYPANEL_S3_BUCKET)")
	fs.StringVar(&c.S3.AccessKey, "s3-access-key", envOr("SKYPANEL_S3_ACCESS_KEY", ""), "the S3 backup store's access key id (SKYPANEL_S3_ACCESS_KEY)")
	fs.StringVar(&c.S3SecretKeyFile, "s3-secret-key-file", envOr("SKYPANEL_S3_SECRET_KEY_FILE", ""),
		"file holding the S3 backup store's secret key, read when SKYPANEL_S3_SECRET_KEY is unset (SKYPANEL_S3_SECRET_KEY_FILE)")
	fs.StringVar(&c.DefaultBackupStore, "default-backup-store", envOr("SKYPANEL_DEFAULT_BACKUP_STORE", db.BackupStoreFile),
		"where the backups of a database created without backup_store go: file or s3 (SKYPANEL_DEFAULT_BACKUP_STORE)")
	fs.StringVar(&c.GitHub.ClientID, "github-client-id", os.Getenv("GITHUB_CLIENT_ID"), "the GitHub OAuth app's client id; empty: no GitHub integration (GITHUB_CLIENT_ID)")
	fs.StringVar(&c.GitHubClientSecretFile, "github-client-secret-file", envOr("GITHUB_CLIENT_SECRET_FILE", ""),
		"file holding the GitHub OAuth app's client secret, read when GITHUB_CLIENT_SECRET is unset (GITHUB_CLIENT_SECRET_FILE)")
	fs.StringVar(&c.GitHub.CallbackURL, "github-callback-url", os.Getenv("GITHUB_CALLBACK_URL"),
		"the OAuth app's callback URL, <public URL>/api/paas/github/callback; default: derived from the public URL (GITHUB_CALLBACK_URL)")
	fs.StringVar(&c.GitHub.WebURL, "github-web-url", envOr("GITHUB_WEB_URL", "https://github.com"),
		"GitHub's web address, where users authorize (GitHub Enterprise: https://ghe.example.com) (GITHUB_WEB_URL)")
	fs.StringVar(&c.GitHub.APIURL, "github-api-url", envOr("GITHUB_API_URL", "https://api.github.com/"),
		"GitHub's REST API (GitHub Enterprise: https://ghe.example.com/api/v3/) (GITHUB_API_URL)")
	fs.StringVar(&c.GitHubWebhookSecretFile, "github-webhook-secret-file", envOr("GITHUB_WEBHOOK_SECRET_FILE", ""),
		"file holding the secret every GitHub webhook delivery is signed with, read when GITHUB_WEBHOOK_SECRET is unset; none: every delivery is refused (GITHUB_WEBHOOK_SECRET_FILE)")
	fs.StringVar(&c.FrontendURL, "frontend-url", os.Getenv("FRONTEND_URL"),
		"the dashboard's URL, where the browser returns after connecting GitHub (?github=connected); empty: the callback answers JSON (FRONTEND_URL)")
	fs.IntVar(&c.KeepReleaseImages, "keep-release-images", envInt("SKYPANEL_KEEP_RELEASE_IMAGES", store.DefaultKeepReleaseImages), "images of this many recent releases are kept per app for rollbacks (SKYPANEL_KEEP_RELEASE_IMAGES)")
}

func (c *controlConfig) validate() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("DATABASE_URL (or -database-url) is required")
	}
	if c.PlatformDomain == "" {
		return fmt.Errorf("PLATFORM_DOMAIN must not be empty")
	}
	if c.BillingPeriod < time.Second || c.BillingPeriod > 24*time.Hour {
		return fmt.Errorf("billing-period %s: want between 1s and 24h", c.BillingPeriod)
	}
	if !currencyPattern.MatchString(c.Currency) {
		return fmt.Errorf("currency %q: want an ISO 4217 code such as USD", c.Currency)
	}
	if c.KeepReleaseImages < 1 {
		return fmt.Errorf("keep-release-images must be at least 1 (the current release), not %d", c.KeepReleaseImages)
	}
	if c.ACME.DirectoryURL != "" && !strings.HasPrefix(c.ACME.DirectoryURL, "https://") {
		return fmt.Errorf("acme-directory %q: want an https:// URL", c.ACME.DirectoryURL)
	}
	if c.ACME.RetryBase < time.Second || c.CertificateCheck < time.Second {
		return fmt.Errorf("acme-retry-base and certificate-check-interval must be at least 1s")
	}
	if c.AppURLScheme != "http" && c.AppURLScheme != "https" {
		return fmt.Errorf("APP_URL_SCHEME must be http or https, not %q", c.AppURLScheme)
	}
	return nil
}

// registry is the platform registry as the control activities use it: plain HTTP on loopback
// (`skypanel dev`), HTTPS elsewhere.
func (c *controlConfig) registry() registry.Registry {
	scheme := "https"
	if host, _, err := net.SplitHostPort(c.Registry); err == nil && (host == "localhost" || net.ParseIP(host).IsLoopback()) {
		scheme = "http"
	}
	return registry.Registry{Addr: c.Registry, Scheme: scheme, API: c.RegistryUpstream}
}

func (c *controlConfig) routing() store.Routing {
	return store.Routing{PlatformDomain: c.PlatformDomain, URLScheme: c.AppURLScheme, PublicPort: c.AppPublicPort}
}

// loadKeyring reads the secret keyring from SKYPANEL_SECRET_KEY, else from SecretKeyFile;
// with generate (skypanel dev) a missing file is created with a new key.
func (c *controlConfig) loadKeyring(log *slog.Logger, generate bool) error {
	ring, created, err := secrets.LoadKeyring(secrets.KeySource{
		EnvValue: os.Getenv(secrets.KeyringEnv), DevKeyFile: c.SecretKeyFile, GenerateDevKey: generate,
	})
	if err != nil {
		return fmt.Errorf("secret keyring (set %s, or --secret-key-file): %w", secrets.KeyringEnv, err)
	}
	if created {
		log.Info("generated a new secret key", "file", c.SecretKeyFile, "key_id", ring.PrimaryID())
	}
	c.keyring = ring
	return nil
}

// temporalClient is the Temporal client configuration of every control-plane process: with the
// keyring, payloads and failures are encrypted before they reach Temporal.
func (c *controlConfig) temporalClient() sptemporal.ClientConfig {
	cfg := sptemporal.ClientConfig{Address: c.TemporalAddress, Namespace: c.TemporalNamespace, TLS: c.temporalTLS}
	if c.keyring != nil {
		cfg.DataConverter, cfg.FailureConverter = codec.EncryptionConvertersWithOptions(c.keyring, codec.Options{AllowPlaintext: c.AllowPlaintextPayloads})
	}
	return cfg
}

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

// parseControlConfig reads a control-plane command's flags (extra, when set, adds the
// command's own), validates them and, with keyring, loads the secret keyring (which production
// commands require).
func parseControlConfig(log *slog.Logger, name string, args []string, keyring bool, extra func(*flag.FlagSet)) (controlConfig, error) {
	var cfg controlConfig
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	cfg.bind(fs, 0)
	if extra != nil {
		extra(fs)
	}
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	if err := cfg.loadBackupStores(); err != nil {
		return cfg, err
	}
	var err error
	if cfg.temporalTLS, err = cfg.TemporalTLS.load(); err != nil {
		return cfg, err
	}
	if keyring {
		if err := cfg.loadKeyring(log, false); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// The GitHub secrets' variables (else their --github-*-file flags).
const (
	GitHubClientSecretEnv  = "GITHUB_CLIENT_SECRET"
	GitHubWebhookSecretEnv = "GITHUB_WEBHOOK_SECRET"
)

// loadGitHub reads the GitHub secrets, defaults the callback URL from publicURL (the API's
// public address) and checks the settings. An error never quotes a secret.
func (c *controlConfig) loadGitHub(publicURL string) error {
	read := func(env, file, flagName string) (string, error) {
		if v := os.Getenv(env); v != "" {
			return strings.TrimSpace(v), nil
		}
		if file == "" {
			return "", nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flagName, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	var err error
	if c.GitHub.ClientSecret, err = read(GitHubClientSecretEnv, c.GitHubClientSecretFile, "github-client-secret-file"); err != nil {
		return err
	}
	webhook, err := read(GitHubWebhookSecretEnv, c.GitHubWebhookSecretFile, "github-webhook-secret-file")
	if err != nil {
		return err
	}
	c.githubWebhookSecret = []byte(webhook)
	if (c.GitHub.ClientID == "") != (c.GitHub.ClientSecret == "") {
		return fmt.Errorf("GitHub: set both GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (or --github-client-secret-file), or neither")
	}
	if c.GitHub.CallbackURL == "" && publicURL != "" {
		c.GitHub.CallbackURL = strings.TrimRight(publicURL, "/") + "/api/paas/github/callback"
	}
	if c.GitHub.Enabled() && c.GitHub.CallbackURL == "" {
		return fmt.Errorf("GitHub: set GITHUB_CALLBACK_URL (or the public URL it derives from)")
	}
	if err := c.GitHub.Validate(); err != nil {
		return fmt.Errorf("GitHub: %w", err)
	}
	if c.FrontendURL != "" {
		if u, err := url.Parse(c.FrontendURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return fmt.Errorf("frontend-url %q: want an absolute http(s) URL without credentials", c.FrontendURL)
		}
	}
	return nil
}

// S3SecretKeyEnv holds the S3 backup store's secret key (else --s3-secret-key-file).
const S3SecretKeyEnv = "SKYPANEL_S3_SECRET_KEY"

// loadBackupStores makes the backup stores: the filesystem store always, the S3 store when an
// endpoint or a bucket is given (then every S3 setting is required, the secret key read from
// the environment or its file), and checks the default store is one of them.
func (c *controlConfig) loadBackupStores() error {
	stores := &backups.Stores{File: backups.FileStore{Dir: c.BackupDir}, Default: c.DefaultBackupStore}
	if c.S3.Endpoint != "" || c.S3.Bucket != "" {
		c.S3.SecretKey = os.Getenv(S3SecretKeyEnv)
		if c.S3.SecretKey == "" && c.S3SecretKeyFile != "" {
			data, err := os.ReadFile(c.S3SecretKeyFile)
			if err != nil {
				return fmt.Errorf("s3-secret-key-file: %w", err)
			}
			c.S3.SecretKey = strings.TrimSpace(string(data))
		}
		s3, err := backups.NewS3Store(c.S3)
		if err != nil {
			return err
		}
		stores.S3 = s3
	}
	if !stores.Has(c.DefaultBackupStore) {
		return fmt.Errorf("default-backup-store %q: want file, or s3 with the S3 store configured (--s3-endpoint, --s3-bucket, ...)", c.DefaultBackupStore)
	}
	c.backupStores = stores
	return nil
}

// backupStore is the database backups' stores (made by loadBackupStores).
func (c controlConfig) backupStore() *backups.Stores { return c.backupStores }

// flagGiven says whether the command line set the flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
