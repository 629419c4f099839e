package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// nodeCertificates issues nodes their client certificates for the node gateway: at
// registration, and whenever the agent renews with its node token (before expiry, or an agent
// registered before the gateway existed). The node sends a CSR: its private key never leaves it.
type nodeCertificates struct {
	ca       *nodegateway.Authority
	lifetime time.Duration
	store    nodeCertificateStore
	log      *slog.Logger
}

type nodeCertificateStore interface {
	RecordNodeCertificate(ctx context.Context, nodeID, serial string, notAfter time.Time) error
}

// gatewayCertificate is a node's certificate and the CA that issued it (which issued the
// gateway's server certificate too: the node trusts the gateway by it).
type gatewayCertificate struct {
	Certificate   string    `json:"certificate" doc:"the node's client certificate for the node gateway, PEM"`
	CACertificate string    `json:"ca_certificate" doc:"the CA that issued it and the gateway's server certificate, PEM"`
	ExpiresAt     time.Time `json:"expires_at" doc:"when the certificate stops working: the agent renews it once less than a third of its lifetime is left"`
}

// csrField is the CSR a node sends, checked before anything is spent on it.
type csrField struct {
	CSR string `json:"csr" minLength:"1" maxLength:"16384" doc:"a PEM certificate signing request for the node's own key"`
}

// check refuses a CSR the CA would refuse, as a 422 on location.
func (c nodeCertificates) check(location, csr string) error {
	if err := nodegateway.CheckRequest([]byte(csr)); err != nil {
		return fieldError(location, err.Error(), nil)
	}
	return nil
}

// issue signs the node's CSR and records the certificate as the node's current one (the one it
// replaces stays good for a short grace, while the agent's connections move over).
func (c nodeCertificates) issue(ctx context.Context, nodeID, csr string) (gatewayCertificate, error) {
	if c.ca == nil {
		return gatewayCertificate{}, errNoNodeCA
	}
	issued, err := c.ca.IssueNode(nodeID, []byte(csr), time.Now(), c.lifetime)
	if err != nil {
		return gatewayCertificate{}, err
	}
	if err := c.store.RecordNodeCertificate(ctx, nodeID, issued.Serial, issued.NotAfter); err != nil {
		return gatewayCertificate{}, err
	}
	c.log.InfoContext(ctx, "node certificate issued", "node_id", nodeID, "serial", issued.Serial, "expires_at", issued.NotAfter.UTC().Format(time.RFC3339))
	return gatewayCertificate{Certificate: string(issued.PEM), CACertificate: string(c.ca.CertificatePEM()), ExpiresAt: issued.NotAfter.UTC()}, nil
}

// errNoNodeCA: the API was started without the node gateway's CA.
var errNoNodeCA = errors.New("this control plane issues no node certificates")

type renewCertificateInput struct {
	Body csrField
}

type renewCertificateOutput struct {
	Body gatewayCertificate
}

// register puts the renewal on api, behind the node token's middleware.
func (c nodeCertificates) register(api huma.API, nodeOp func(id, path, summary string) huma.Operation, problem func(context.Context, string, error) error) {
	op := nodeOp("agent-renew-certificate", "/api/paas/agent/certificate",
		"Issue the calling node a new client certificate for the node gateway, from its CSR")
	op.DefaultStatus = http.StatusOK
	huma.Register(api, op, func(ctx context.Context, in *renewCertificateInput) (*renewCertificateOutput, error) {
		if err := c.check("body.csr", in.Body.CSR); err != nil {
			return nil, err
		}
		nodeID, _ := ctx.Value(nodeKey).(string)
		cert, err := c.issue(ctx, nodeID, in.Body.CSR)
		if errors.Is(err, errNoNodeCA) {
			return nil, huma.Error503ServiceUnavailable(err.Error())
		}
		if err != nil {
			return nil, problem(ctx, "node", err)
		}
		return &renewCertificateOutput{Body: cert}, nil
	})
}
