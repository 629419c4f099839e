// Package apiserver is SkyPanel's REST API: huma v2 operations under /api/paas, OpenAPI 3.1 at
// /openapi.json, docs at /docs, RFC 9457 problem JSON for every error.
package apiserver

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/skypanel/skypanel/apiserver/ghconnect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"go.temporal.io/sdk/client"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/secrets/nodekeys"
	"github.com/skypanel/skypanel/temporal/nodegateway"
	"github.com/skypanel/skypanel/temporal/operations"
)

// Config is what the API needs beyond its dependencies.
type Config struct {
	// Backups are the stores database backups go to (nil: the database backup routes answer
	// 503). Nodes upload to and download from the file store through the API, and from the S3
	// store directly, with credentials the API seals for them.
	Backups *backups.Stores
	// MinBackupInterval is the shortest backup schedule a customer may ask for (0: an hour).
	MinBackupInterval time.Duration
	// AllowLoopbackGit accepts http:// git URLs on loopback (`skypanel dev` only).
	AllowLoopbackGit bool
	// Version is reported in the OpenAPI document.
	Version string
	// Keyring seals and opens the apps' environment values and serves the Temporal codec
	// endpoint. Required.
	Keyring *secrets.Keyring
	// CodecOrigins are the Temporal Web UI origins (e.g. http://127.0.0.1:8233) allowed to call
	// the codec endpoint from the browser.
	CodecOrigins []string
	// BillingPeriod is the billing run's period: a credit resumes an organization's suspended
	// apps once its wallet pays one period of them.
	BillingPeriod time.Duration
	// NodeInstall is how worker nodes join (install command, script, agent binary, token
	// lifetime).
	NodeInstall NodeInstall
	// NodeCA issues each node's client certificate for the node gateway, at registration and
	// at renewal. Nil: nodes get none (tests of other routes).
	NodeCA *nodegateway.Authority
	// NodeCertificateLifetime is how long a node's certificate is valid; default 30 days.
	NodeCertificateLifetime time.Duration
	// NodeGateway is the node gateway when it runs in this process: a revoke cuts the node off
	// it at once. Gateways elsewhere read the revocation from the store within seconds.
	NodeGateway NodeCutter
	// NodeKeys are the nodes' own keys; nil: the API opens them itself (from the store, under
	// Keyring). Shared with the node gateway when both run in one process.
	NodeKeys *nodekeys.Keys
	// RateLimit and RateBurst bound each API token's requests per second in this process
	// (0: DefaultRateLimit, DefaultRateBurst); past them, 429 with Retry-After.
	RateLimit float64
	RateBurst int
	// GitHub is the platform's GitHub OAuth app (disabled: the GitHub routes answer 503);
	// GitHubWebhookSecret verifies every delivery (empty: every delivery is refused, 401);
	// FrontendURL is where the OAuth callback sends the browser back (empty: it answers JSON).
	GitHub              ghconnect.Config
	GitHubWebhookSecret []byte
	FrontendURL         string
	// PlatformDomain is where apps get their system host names (<name>.<PlatformDomain>): no
	// custom domain may be it or under it.
	PlatformDomain string
}

// NodeCutter cuts a revoked node off the node gateway (*nodegateway.Gateway).
type NodeCutter interface {
	Revoke(nodeID, name string)
}

// Server serves the API.
type Server struct {
	cfg      Config
	store    *db.Store
	temporal client.Client
	// ops is the one owner of app operations: every operation handler goes through it.
	ops *operations.Owner
	// certs issues the nodes' gateway certificates.
	certs nodeCertificates
	// nodeKeys are the nodes' own keys (shared with the node gateway when it runs here).
	nodeKeys *nodekeys.Keys
	log      *slog.Logger
	api      huma.API
	mux      *http.ServeMux
	// streams counts the organizations' open log streams (maxStreamsPerOrg).
	streams openStreams
	// limits are the per-token rate limits.
	limits *tokenLimits
	// instances caches the nodes' listings of apps' instances (instancesCacheFor).
	instances instanceListings
	// notifier wakes the log streams when their deployment or token changes (nil without a
	// store: tests of other routes). It connects at the first stream.
	notifier *db.Notifier
}

// New builds the API's handler.
func New(cfg Config, store *db.Store, temporalClient client.Client, log *slog.Logger) *Server {
	if cfg.Version == "" {
		cfg.Version = "0.1.0"
	}
	if cfg.Keyring == nil {
		panic("apiserver: Config.Keyring is required")
	}
	if cfg.NodeCertificateLifetime == 0 {
		cfg.NodeCertificateLifetime = nodegateway.DefaultCertificateLifetime
	}
	mux := http.NewServeMux()
	hcfg := huma.DefaultConfig("SkyPanel PaaS API", cfg.Version)
	hcfg.Info.Description = "Deploy apps from Git; every operation is a durable Temporal workflow."
	hcfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer"},
	}
	s := &Server{cfg: cfg, store: store, temporal: temporalClient, log: log, mux: mux,
		ops:   &operations.Owner{Store: store, Temporal: temporalClient, Log: log},
		certs: nodeCertificates{ca: cfg.NodeCA, lifetime: cfg.NodeCertificateLifetime, store: store, log: log}, nodeKeys: cfg.NodeKeys,
		limits: newTokenLimits(cfg.RateLimit, cfg.RateBurst)}
	if s.nodeKeys == nil {
		s.nodeKeys = nodekeys.New(store, cfg.Keyring)
	}
	if store != nil {
		s.notifier = db.NewNotifier(store.Pool(), log)
	}
	s.api = humago.New(mux, hcfg)
	s.registerHealth()
	s.registerUsers()
	s.registerAPITokens()
	s.registerCatalog()
	s.registerNodes()
	s.registerAgent()
	s.registerApplications()
	s.registerOperations()
	s.registerDeployments()
	s.registerReleases()
	s.registerInstances()
	s.registerEnv()
	s.registerDomains()
	s.registerDatabases()
	s.registerDatabaseCatalog()
	s.registerDatabaseSchedule()
	s.registerDatabaseBackups()
	s.registerCodec()
	s.registerWallet()
	s.registerGitHub()
	s.completeOpenAPI()
	return s
}

// completeOpenAPI says in the document what a client must know: where the API is (the public
// URL, or the server that served the document) and, for every operation, whether it needs the
// bearer token; the few public ones (health, the install script, the agent's binary and
// registration) say so with an empty requirement instead of saying nothing.
func (s *Server) completeOpenAPI() {
	doc := s.api.OpenAPI()
	server := "/"
	if u := strings.TrimRight(s.cfg.NodeInstall.PublicURL, "/"); u != "" {
		server = u
	}
	doc.Servers = []*huma.Server{{URL: server, Description: "this SkyPanel control plane"}}
	for _, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op != nil && op.Security == nil {
				op.Security = []map[string][]string{{}}
			}
		}
	}
}

// Close releases what the server holds beyond its requests (the log streams' listening
// connection). Call it once the HTTP server has shut down.
func (s *Server) Close() {
	if s.notifier != nil {
		s.notifier.Close()
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// API exposes the huma API (for the OpenAPI document).
func (s *Server) API() huma.API { return s.api }

func (s *Server) registerHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "health", Method: http.MethodGet, Path: "/healthz", Summary: "Liveness and database check", Tags: []string{"health"},
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Body struct {
			Status string `json:"status"`
		}
	}, error) {
		if err := s.store.Pool().Ping(ctx); err != nil {
			return nil, huma.Error503ServiceUnavailable("database unreachable")
		}
		out := &struct {
			Body struct {
				Status string `json:"status"`
			}
		}{}
		out.Body.Status = "ok"
		return out, nil
	})
}

var (
	userSecurity = []map[string][]string{{"bearer": {}}}
)

// op is an operation that needs a signed-in user (admin when admin is set).
func (s *Server) op(id, method, path, summary, tag string, status int, admin bool) huma.Operation {
	return huma.Operation{
		OperationID: id, Method: method, Path: path, Summary: summary, Tags: []string{tag},
		DefaultStatus: status, Security: userSecurity,
		Middlewares: huma.Middlewares{s.authenticate(admin)},
	}
}

// nodeOp is an operation of the agent, authenticated as a node (its node token).
func (s *Server) nodeOp(id, method, path, summary string, status int) huma.Operation {
	return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: []string{"agent"},
		DefaultStatus: status, Security: userSecurity, Middlewares: huma.Middlewares{s.authenticateNode}}
}

func principal(ctx context.Context) db.Principal {
	p, _ := ctx.Value(principalKey).(db.Principal)
	return p
}
