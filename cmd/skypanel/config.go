package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/skypanel/skypanel/activities/store"
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

func (c *controlConfig) bind(fs *flag.FlagSet, defaultPublicPort int) {
	fs.StringVar(&c.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "Postgres URL (DATABASE_URL)")
	fs.StringVar(&c.TemporalAddress, "temporal-address", envOr("TEMPORAL_ADDRESS", sptemporal.DefaultAddress), "Temporal frontend host:port (TEMPORAL_ADDRESS)")
	fs.StringVar(&c.TemporalNamespace, "temporal-namespace", envOr("TEMPORAL_NAMESPACE", sptemporal.DefaultNamespace), "Temporal namespace (TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.PlatformDomain, "platform-domain", envOr("PLATFORM_DOMAIN", "apps.localhost"), "apps answer at <name>.<domain> (PLATFORM_DOMAIN)")
	fs.StringVar(&c.AppURLScheme, "app-url-scheme", envOr("APP_URL_SCHEME", "http"), "scheme of app URLs (APP_URL_SCHEME)")
	fs.IntVar(&c.AppPublicPort, "app-public-port", envInt("APP_PUBLIC_PORT", defaultPublicPort), "port in app URLs, 0 for the scheme's default (APP_PUBLIC_PORT)")
	fs.IntVar(&c.KeepReleaseImages, "keep-release-images", envInt("SKYPANEL_KEEP_RELEASE_IMAGES", store.DefaultKeepReleaseImages), "images of this many recent releases are kept per app for rollbacks (SKYPANEL_KEEP_RELEASE_IMAGES)")
}

func (c *controlConfig) validate() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("DATABASE_URL (or -database-url) is required")
	}
	if c.PlatformDomain == "" {
		return fmt.Errorf("PLATFORM_DOMAIN must not be empty")
	}
	if c.KeepReleaseImages < 1 {
		return fmt.Errorf("keep-release-images must be at least 1 (the current release), not %d", c.KeepReleaseImages)
	}
	if c.AppURLScheme != "http" && c.AppURLScheme != "https" {
		return fmt.Errorf("APP_URL_SCHEME must be http or https, not %q", c.AppURLScheme)
	}
	return nil
}

func (c *controlConfig) routing() store.Routing {
	return store.Routing{PlatformDomain: c.PlatformDomain, URLScheme: c.AppURLScheme, PublicPort: c.AppPublicPort}
}

func (c *controlConfig) temporalClient() sptemporal.ClientConfig {
	return sptemporal.ClientConfig{Address: c.TemporalAddress, Namespace: c.TemporalNamespace}
}
