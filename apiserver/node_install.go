package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

// Bounds of --registration-token-ttl.
const (
	DefaultRegistrationTokenTTL = 24 * time.Hour
	MinRegistrationTokenTTL     = time.Minute
	MaxRegistrationTokenTTL     = 30 * 24 * time.Hour
)

// Paths the install command and script use.
const (
	installScriptPath = "/api/paas/agent/install-script-raw"
	agentBinaryPath   = "/api/paas/agent/binary"
)

// NodeInstall is how worker nodes join: where they reach the control plane, which agent binary
// the install script downloads, and how long a registration token lives.
type NodeInstall struct {
	// PublicURL is the control plane's base URL as nodes reach it (--public-url); the install
	// command is offered only when it is set.
	PublicURL string
	// PublicGatewayAddress is the node gateway as nodes dial it (--public-gateway-address):
	// nodes reach Temporal only through it.
	PublicGatewayAddress string
	// AgentBinary is the skypanel-agent file served to nodes (--agent-binary).
	AgentBinary string
	// RegistrationTokenTTL is how long a new registration token is valid.
	RegistrationTokenTTL time.Duration
}

// publicURLShape is what the install command can carry unquoted and the script accepts.
var publicURLShape = regexp.MustCompile(`^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`)

// Validate checks the settings, naming each flag at fault.
func (c NodeInstall) Validate() error {
	var errs []error
	if c.PublicURL != "" {
		if err := validatePublicURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("--public-url (SKYPANEL_PUBLIC_URL) %q: %w", c.PublicURL, err))
		}
	}
	if c.PublicGatewayAddress != "" {
		if err := validateHostPort(c.PublicGatewayAddress); err != nil {
			errs = append(errs, fmt.Errorf("--public-gateway-address (SKYPANEL_PUBLIC_GATEWAY_ADDRESS) %q: %w", c.PublicGatewayAddress, err))
		}
	}
	if c.AgentBinary == "" {
		errs = append(errs, errors.New("--agent-binary (SKYPANEL_AGENT_BINARY) must not be empty"))
	}
	if c.RegistrationTokenTTL < MinRegistrationTokenTTL || c.RegistrationTokenTTL > MaxRegistrationTokenTTL {
		errs = append(errs, fmt.Errorf("--registration-token-ttl %s: want %s to %s", c.RegistrationTokenTTL, MinRegistrationTokenTTL, MaxRegistrationTokenTTL))
	}
	return errors.Join(errs...)
}

func validatePublicURL(raw string) error {
	trimmed := strings.TrimRight(raw, "/")
	u, err := url.Parse(trimmed)
	if err != nil || !publicURLShape.MatchString(trimmed) {
		return errors.New("want http(s)://host[:port][/path], with no credentials, query or fragment")
	}
	return validateHostPort(u.Host + portOrDefault(u))
}

// portOrDefault lets validateHostPort judge a URL host that has no port.
func portOrDefault(u *url.URL) string {
	if u.Port() == "" {
		return ":443"
	}
	return ""
}

// validateHostPort accepts host:port with a host name or IP literal and a port 1-65535.
func validateHostPort(hostPort string) error {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1-65535", port)
	}
	if !isNodeHost(host) {
		return fmt.Errorf("%q is neither a host name nor an IP address", host)
	}
	return nil
}

// isNodeHost accepts an RFC 1123 host name or an IP literal without a zone.
func isNodeHost(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Zone() == ""
	}
	return contract.IsHostName(host)
}

// nodeInstallStore is what node enrollment needs of the store: an interface, so its handlers
// are tested without Postgres.
type nodeInstallStore interface {
	RegionByRef(ctx context.Context, ref string) (db.Region, error)
	EnsureRegion(ctx context.Context, slug, name string) (db.Region, error)
	CreateNode(ctx context.Context, name, regionID, host string, registrationTokenHash []byte, expiresAt time.Time) (db.Node, error)
	SetRegistrationToken(ctx context.Context, nodeID string, hash []byte, expiresAt time.Time) (db.Node, error)
	NodeByRegistrationToken(ctx context.Context, registrationTokenHash []byte) (db.Node, error)
	RegisterNode(ctx context.Context, registrationTokenHash, nodeTokenHash []byte, reg db.NodeRegistration) (db.Node, error)
	nodeCertificateStore
}

var _ nodeInstallStore = (*db.Store)(nil)

// nodeInstall serves how a node joins: an admin creates it (or issues it a new token), the
// install script checks the token and fetches the agent, and the agent registers.
type nodeInstall struct {
	cfg     NodeInstall
	store   nodeInstallStore
	keyring *secrets.Keyring
	certs   nodeCertificates
	agent   *agentBinary
	problem func(ctx context.Context, what string, err error) error
	log     *slog.Logger
}

func newNodeInstall(cfg NodeInstall, store nodeInstallStore, keyring *secrets.Keyring, certs nodeCertificates, problem func(context.Context, string, error) error, log *slog.Logger) nodeInstall {
	if cfg.RegistrationTokenTTL == 0 {
		cfg.RegistrationTokenTTL = DefaultRegistrationTokenTTL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return nodeInstall{cfg: cfg, store: store, keyring: keyring, certs: certs, agent: &agentBinary{path: cfg.AgentBinary}, problem: problem, log: log}
}

type createNodeInput struct {
	Body createNodeBody
}

type createNodeBody struct {
	Name         string `json:"name" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"Node name (RFC 1123 label)"`
	Region       string `json:"region" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"Region slug; it must exist unless create_region is set"`
	CreateRegion bool   `json:"create_region,omitempty" doc:"Create the region when it does not exist yet"`
	Host         string `json:"host,omitempty" maxLength:"253" doc:"The node's address, informational: a host name (RFC 1123) or an IP address"`
}

// Resolve refuses a host that is neither a host name nor an IP literal.
func (b *createNodeBody) Resolve(_ huma.Context, prefix *huma.PathBuffer) []error {
	if b.Host != "" && !isNodeHost(b.Host) {
		return []error{&huma.ErrorDetail{Location: prefix.With("host"), Value: b.Host,
			Message: "want a host name (RFC 1123) or an IP address"}}
	}
	return nil
}

// nodeEnrollment answers the creation of a node and every new token of it.
type nodeEnrollment struct {
	Node              Node      `json:"node"`
	RegistrationToken string    `json:"registration_token" doc:"One-time token the agent registers with. Shown once."`
	ExpiresAt         time.Time `json:"expires_at" doc:"When the registration token stops working"`
	InstallCommand    string    `json:"install_command,omitempty" doc:"Run it as root on the node: it installs and starts the agent"`
	// InstallCommandUnavailable says why there is no install command (a setting the API lacks).
	InstallCommandUnavailable string `json:"install_command_unavailable,omitempty" doc:"Why install_command is missing"`
	AgentCommand              string `json:"agent_command" doc:"How to start the agent by hand instead"`
}

type nodeEnrollmentOutput struct {
	Body nodeEnrollment
}

type installCheckInput struct {
	Body struct {
		RegistrationToken string `json:"registration_token" minLength:"1" maxLength:"200"`
		Region            string `json:"region" maxLength:"63" doc:"the region the install command names"`
		Name              string `json:"name" maxLength:"63" doc:"the node name the install command names"`
	}
}

type registerAgentInput struct {
	Body struct {
		RegistrationToken string `json:"registration_token" minLength:"1" maxLength:"200"`
		Hostname          string `json:"hostname,omitempty" maxLength:"253"`
		CPUs              int    `json:"cpus,omitempty" minimum:"0"`
		MemoryMB          int64  `json:"memory_mb,omitempty" minimum:"0"`
		WantKeyring       bool   `json:"want_keyring,omitempty" doc:"Ignored: a node never gets the platform's keyring (it has keys of its own, POST /api/paas/agent/keys)"`
		CSR               string `json:"csr,omitempty" maxLength:"16384" doc:"a PEM certificate signing request for the node's own key: the answer carries the node's gateway certificate"`
	}
}

type registerAgentOutput struct {
	Body struct {
		NodeID    string `json:"node_id"`
		NodeToken string `json:"node_token" doc:"The node's credential for heartbeats and logs. Shown once."`
		TaskQueue string `json:"task_queue"`
		// GatewayCertificate is missing when the node sent no CSR, or when the certificate
		// could not be issued: the agent then renews with its node token.
		GatewayCertificate *gatewayCertificate `json:"gateway_certificate,omitempty" doc:"with csr: the node's certificate for the node gateway, and its CA"`
	}
}

func (h nodeInstall) register(api huma.API, admin adminOp) {
	huma.Register(api, admin("admin-create-node", http.MethodPost, "/api/paas/admin/nodes",
		"Create a worker node and get its one-time registration token and install command", http.StatusCreated),
		func(ctx context.Context, in *createNodeInput) (*nodeEnrollmentOutput, error) {
			region, err := h.region(ctx, in.Body.Region, in.Body.CreateRegion)
			if err != nil {
				return nil, err
			}
			token, hash, err := NewRegistrationToken()
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			expiresAt := h.expiry()
			node, err := h.store.CreateNode(ctx, in.Body.Name, region.ID, strings.ToLower(in.Body.Host), hash, expiresAt)
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a node with this name already exists", &huma.ErrorDetail{Location: "body.name", Value: in.Body.Name})
			}
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			h.log.InfoContext(ctx, "node created", "node_id", node.ID, "node", node.Name, "region", node.Region, "user_id", principal(ctx).UserID)
			return &nodeEnrollmentOutput{Body: h.enrollment(node, token, expiresAt)}, nil
		})
	huma.Register(api, admin("admin-issue-node-token", http.MethodPost, "/api/paas/admin/nodes/{id}/token",
		"Issue a node a new registration token: for one that has not registered, or one to register again", 0),
		func(ctx context.Context, in *nodeIDInput) (*nodeEnrollmentOutput, error) {
			token, hash, err := NewRegistrationToken()
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			expiresAt := h.expiry()
			node, err := h.store.SetRegistrationToken(ctx, in.ID, hash, expiresAt)
			if err != nil {
				return nil, h.problem(ctx, "node", err)
			}
			h.log.InfoContext(ctx, "node registration token issued", "node_id", node.ID, "node", node.Name, "status", node.Status, "user_id", principal(ctx).UserID)
			return &nodeEnrollmentOutput{Body: h.enrollment(node, token, expiresAt)}, nil
		})

	huma.Register(api, huma.Operation{
		OperationID: "agent-install-check", Method: http.MethodPost, Path: "/api/paas/agent/install-check", Tags: []string{"agent"},
		DefaultStatus: http.StatusNoContent,
		Summary:       "Check a registration token against the node the install command names, changing nothing",
	}, func(ctx context.Context, in *installCheckInput) (*struct{}, error) {
		node, err := h.store.NodeByRegistrationToken(ctx, HashToken(in.Body.RegistrationToken))
		if err != nil {
			return nil, h.tokenProblem(ctx, err)
		}
		if in.Body.Region != node.Region {
			return nil, huma.Error409Conflict(fmt.Sprintf("the token is for node %s of region %s, not region %s", node.Name, node.Region, in.Body.Region),
				&huma.ErrorDetail{Location: "body.region", Value: in.Body.Region})
		}
		if in.Body.Name != node.Name {
			return nil, huma.Error409Conflict(fmt.Sprintf("the token is for node %s, not %s", node.Name, in.Body.Name),
				&huma.ErrorDetail{Location: "body.name", Value: in.Body.Name})
		}
		return &struct{}{}, nil
	})
	huma.Register(api, h.installScriptOperation(), h.serveInstallScript)
	huma.Register(api, h.agentBinaryOperation(), h.serveAgentBinary)

	huma.Register(api, huma.Operation{
		OperationID: "agent-register", Method: http.MethodPost, Path: "/api/paas/agent/register", Tags: []string{"agent"},
		Summary: "Exchange a one-time registration token for the node's credential",
	}, func(ctx context.Context, in *registerAgentInput) (*registerAgentOutput, error) {
		// A bad CSR is refused before the one-time token is spent on it.
		if in.Body.CSR != "" {
			if err := h.certs.check("body.csr", in.Body.CSR); err != nil {
				return nil, err
			}
		}
		nodeToken, nodeHash, err := NewToken(nodeTokenPrefix)
		if err != nil {
			return nil, h.problem(ctx, "node", err)
		}
		node, err := h.store.RegisterNode(ctx, HashToken(in.Body.RegistrationToken), nodeHash, db.NodeRegistration{
			Host: in.Body.Hostname, CPUs: in.Body.CPUs, MemoryMB: in.Body.MemoryMB,
		})
		if err != nil {
			return nil, h.tokenProblem(ctx, err)
		}
		out := &registerAgentOutput{}
		out.Body.NodeID, out.Body.NodeToken, out.Body.TaskQueue = node.ID, nodeToken, sptemporal.NodeTaskQueue(node.ID)
		if in.Body.CSR != "" {
			// The node is registered either way: without its certificate it renews with its
			// token, so a failure here must not lose the token it was just given.
			cert, err := h.certs.issue(ctx, node.ID, in.Body.CSR)
			if err != nil {
				h.log.ErrorContext(ctx, "issue a registering node's certificate", "node_id", node.ID, "error", err)
			} else {
				out.Body.GatewayCertificate = &cert
			}
		}
		h.log.InfoContext(ctx, "node registered", "node_id", node.ID, "node", node.Name, "certificate_issued", out.Body.GatewayCertificate != nil)
		return out, nil
	})
}

// region finds the node's region; an unknown one is created only when the admin asked.
func (h nodeInstall) region(ctx context.Context, slug string, create bool) (db.Region, error) {
	if create {
		region, err := h.store.EnsureRegion(ctx, slug, slug)
		if err != nil {
			return region, h.problem(ctx, "region", err)
		}
		return region, nil
	}
	region, err := h.store.RegionByRef(ctx, slug)
	if errors.Is(err, db.ErrNotFound) {
		return region, fieldError("body.region", `unknown region; pass "create_region": true to create it`, slug)
	}
	if err != nil {
		return region, h.problem(ctx, "region", err)
	}
	return region, nil
}

func (h nodeInstall) expiry() time.Time {
	return time.Now().Add(h.cfg.RegistrationTokenTTL).UTC().Truncate(time.Second)
}

// tokenProblem answers a registration token the store refused; other errors go to problem.
func (h nodeInstall) tokenProblem(ctx context.Context, err error) error {
	var expired *db.RegistrationTokenExpiredError
	switch {
	case errors.Is(err, db.ErrNotFound):
		return huma.Error401Unauthorized("unknown or already used registration token",
			&huma.ErrorDetail{Location: "body.registration_token", Message: "ask an admin for a new one"})
	case errors.As(err, &expired):
		return huma.Error401Unauthorized(
			fmt.Sprintf("registration token expired: regenerate it with POST /api/paas/admin/nodes/%s/token", expired.NodeID),
			&huma.ErrorDetail{Location: "body.registration_token", Message: "expired at " + expired.ExpiredAt.UTC().Format(time.RFC3339)})
	}
	return h.problem(ctx, "node", err)
}

// enrollment is the answer that carries a new token: the install command when the API knows
// enough to offer one, else why not.
func (h nodeInstall) enrollment(node db.Node, token string, expiresAt time.Time) nodeEnrollment {
	out := nodeEnrollment{Node: nodeView(node), RegistrationToken: token, ExpiresAt: expiresAt}
	if missing := h.missingForInstall(true); len(missing) > 0 {
		out.InstallCommandUnavailable = "no install command: " + strings.Join(missing, "; ")
	} else {
		out.InstallCommand = fmt.Sprintf("curl -fsSL %s%s | bash -s %s %s %s %s",
			h.cfg.PublicURL, installScriptPath, h.cfg.PublicURL, token, node.Region, node.Name)
	}
	apiURL, gatewayAddress := h.cfg.PublicURL, h.cfg.PublicGatewayAddress
	if apiURL == "" {
		apiURL = "<API URL>"
	}
	if gatewayAddress == "" {
		gatewayAddress = "<GATEWAY ADDRESS>"
	}
	// The token in the environment, not on the agent's command line (which ps shows).
	out.AgentCommand = fmt.Sprintf("SKYPANEL_REGISTRATION_TOKEN=%s skypanel-agent --api-url %s --gateway-address %s", token, apiURL, gatewayAddress)
	return out
}

// missingForInstall lists what the API lacks to serve a working install; forAdmin adds the
// agent binary's path, which anonymous callers are not told.
func (h nodeInstall) missingForInstall(forAdmin bool) []string {
	var missing []string
	if forAdmin && h.cfg.PublicURL == "" {
		missing = append(missing, "the API has no public URL (start skypanel api with --public-url or SKYPANEL_PUBLIC_URL)")
	}
	if h.cfg.PublicGatewayAddress == "" {
		missing = append(missing, "the API has no node gateway address for nodes (--public-gateway-address or SKYPANEL_PUBLIC_GATEWAY_ADDRESS)")
	}
	if _, err := h.agent.checksum(); err != nil {
		if forAdmin {
			missing = append(missing, fmt.Sprintf("the agent binary %s cannot be read (--agent-binary or SKYPANEL_AGENT_BINARY): %v", h.agent.path, err))
		} else {
			missing = append(missing, "the control plane has no agent binary to serve")
		}
	}
	return missing
}
