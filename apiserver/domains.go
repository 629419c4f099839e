package apiserver

// Custom domains: host names an app serves on besides <name>.<PLATFORM_DOMAIN>. Each change is
// an operation of the app (UpdateAppDomains), queued in its turn like any other.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/net/idna"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/operations"
)

// domainView is one custom domain of an app.
type domainView struct {
	Domain             string     `json:"domain" doc:"The host name, lower case; an internationalized name in its punycode (xn--) form"`
	CertificateStatus  string     `json:"certificate_status" enum:"none,pending,issued,failed" doc:"none: served over HTTP only; pending: a certificate is being issued; issued: served over HTTPS; failed: see certificate_error"`
	CertificateError   string     `json:"certificate_error,omitempty" doc:"Why the last certificate attempt failed, in the CA's words (an issued certificate keeps being served meanwhile)"`
	CertificateExpires *time.Time `json:"certificate_expires_at,omitempty" doc:"When the served certificate expires; it is renewed well before"`
	CreatedAt          time.Time  `json:"created_at"`
}

func domainViewOf(d db.Domain) domainView {
	return domainView{Domain: d.Hostname, CertificateStatus: d.CertificateStatus, CertificateError: d.CertificateError,
		CertificateExpires: d.CertificateExpires, CreatedAt: d.CreatedAt}
}

type domainRenewInput struct {
	Domain string `path:"domain" maxLength:"253"`
}

type domainRenewOutput struct {
	Status int
	Body   struct {
		Domain string `json:"domain"`
		Status string `json:"status" enum:"renewing" doc:"the certificates schedule runs now and renews it"`
	}
}

type domainAddInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Domain string `json:"domain" minLength:"1" maxLength:"253" doc:"A host name such as www.example.com; an internationalized name is converted to punycode"`
	}
}

type domainDeleteInput struct {
	ID     string `path:"id" maxLength:"64"`
	Domain string `path:"domain" maxLength:"253"`
}

type domainChangeOutput struct {
	Status int
	Body   struct {
		Domain *domainView `json:"domain,omitempty" doc:"The domain added (absent after a removal)"`
		// Publishing: the app is routed on a node, which gets the change through this operation.
		OperationID string `json:"operation_id,omitempty" doc:"The operation that publishes the change on the app's node, in the app's queue (GET .../operations)"`
		WorkflowID  string `json:"workflow_id,omitempty"`
		Status      string `json:"status" enum:"publishing,saved" doc:"publishing: the change is queued for the app's node (it runs after the operations ahead of it); saved: the app is not routed yet, and its next deploy or start serves it"`
		Position    int    `json:"position" doc:"The operation's place in the app's queue: 0 when it runs already"`
	}
}

func (s *Server) registerDomains() {
	huma.Register(s.api, s.op("list-domains", http.MethodGet, "/api/paas/applications/{id}/domains",
		"List an application's custom domains with their certificate status", "domains", 0, false),
		func(ctx context.Context, in *idPath) (*items[domainView], error) {
			list, err := s.store.ListDomains(ctx, principal(ctx).OrgID, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			views := make([]domainView, len(list))
			for i, d := range list {
				views[i] = domainViewOf(d)
			}
			return listOf(views), nil
		})
	huma.Register(s.api, s.op("add-domain", http.MethodPost, "/api/paas/applications/{id}/domains",
		"Add a custom domain: the app serves on it as on its own host name", "domains", http.StatusCreated, false),
		func(ctx context.Context, in *domainAddInput) (*domainChangeOutput, error) {
			hostname, detail := s.normalizeDomain(in.Body.Domain, "body.domain")
			if detail != nil {
				return nil, huma.Error422UnprocessableEntity("invalid domain", detail)
			}
			p := principal(ctx)
			var added db.Domain
			var ch db.DomainChange
			op, err := s.ops.Submit(ctx, operations.Request{OrgID: p.OrgID, AppID: in.ID, Kind: db.OpDomains, UserID: p.UserID},
				func(publish db.NewOperation) (db.Enqueued, error) {
					var err error
					added, ch, err = s.store.AddDomain(ctx, p.OrgID, in.ID, hostname, publish)
					return ch.Enqueued, err
				}, func(ctx context.Context) error { return s.store.UndoDomainChange(ctx, in.ID, ch) })
			if err != nil {
				return nil, s.domainProblem(ctx, err, "body.domain", hostname)
			}
			out := s.domainOutput(op, ch, http.StatusCreated)
			view := domainViewOf(added)
			out.Body.Domain = &view
			s.log.InfoContext(ctx, "domain added", "app_id", in.ID, "domain", hostname, "publishing", ch.Publish)
			return out, nil
		})
	huma.Register(s.api, s.op("admin-renew-certificate", http.MethodPost, "/api/paas/admin/domains/{domain}/renew",
		"Renew a custom domain's certificate now (it keeps serving the current one meanwhile)", "admin", http.StatusAccepted, true),
		func(ctx context.Context, in *domainRenewInput) (*domainRenewOutput, error) {
			hostname, detail := s.normalizeDomain(in.Domain, "path.domain")
			if detail != nil {
				return nil, huma.Error422UnprocessableEntity("invalid domain", detail)
			}
			if err := s.store.ForceRenewal(ctx, hostname); err != nil {
				return nil, s.problem(ctx, "domain", err)
			}
			if err := s.triggerCertificates(ctx); err != nil {
				s.log.WarnContext(ctx, "run the certificates schedule now", "domain", hostname, "error", err)
			}
			s.log.InfoContext(ctx, "certificate renewal forced", "domain", hostname, "admin", principal(ctx).UserID)
			out := &domainRenewOutput{Status: http.StatusAccepted}
			out.Body.Domain, out.Body.Status = hostname, "renewing"
			return out, nil
		})
	huma.Register(s.api, s.op("delete-domain", http.MethodDelete, "/api/paas/applications/{id}/domains/{domain}",
		"Remove a custom domain", "domains", http.StatusOK, false),
		func(ctx context.Context, in *domainDeleteInput) (*domainChangeOutput, error) {
			hostname, detail := s.normalizeDomain(in.Domain, "path.domain")
			if detail != nil {
				return nil, huma.Error422UnprocessableEntity("invalid domain", detail)
			}
			p := principal(ctx)
			var ch db.DomainChange
			op, err := s.ops.Submit(ctx, operations.Request{OrgID: p.OrgID, AppID: in.ID, Kind: db.OpDomains, UserID: p.UserID},
				func(publish db.NewOperation) (db.Enqueued, error) {
					var err error
					ch, err = s.store.RemoveDomain(ctx, p.OrgID, in.ID, hostname, publish)
					return ch.Enqueued, err
				}, func(ctx context.Context) error { return s.store.UndoDomainChange(ctx, in.ID, ch) })
			if err != nil {
				return nil, s.domainProblem(ctx, err, "path.domain", hostname)
			}
			s.log.InfoContext(ctx, "domain removed", "app_id", in.ID, "domain", hostname, "publishing", ch.Publish)
			return s.domainOutput(op, ch, http.StatusOK), nil
		})
}

func (s *Server) domainOutput(op db.Operation, ch db.DomainChange, saved int) *domainChangeOutput {
	out := &domainChangeOutput{Status: saved}
	out.Body.Status = "saved"
	if ch.Publish {
		out.Status = http.StatusAccepted
		out.Body.OperationID, out.Body.WorkflowID, out.Body.Status, out.Body.Position = op.ID, op.WorkflowID, "publishing", op.Position
	}
	return out
}

// domainProblem answers a domain change the store refused.
func (s *Server) domainProblem(ctx context.Context, err error, location, hostname string) error {
	var taken *db.DomainTakenError
	var limit *db.DomainLimitError
	switch {
	case errors.As(err, &taken):
		return huma.Error409Conflict(taken.Error(), &huma.ErrorDetail{Location: location, Message: "the domain is taken", Value: hostname})
	case errors.As(err, &limit):
		return huma.Error409Conflict(limit.Error(), &huma.ErrorDetail{Location: location, Message: "remove a domain first"})
	case errors.Is(err, db.ErrNoSuchDomain):
		return huma.Error404NotFound("the application has no such domain", &huma.ErrorDetail{Location: location, Value: hostname})
	case errors.Is(err, operations.ErrUnavailable):
		return huma.Error503ServiceUnavailable("could not publish the change: the workflow service is unavailable; nothing was changed, try again")
	}
	return s.problem(ctx, "application", err)
}

// normalizeDomain turns what a customer typed into the host name nginx gets, or says what is
// wrong with it: lower case, an internationalized name as punycode, RFC 1123 labels, at least
// two of them, no wildcard (it needs DNS-01 validation), no IP address, and never the
// platform's own domain or a name under it (that would take another app's system name).
func (s *Server) normalizeDomain(raw, location string) (string, *huma.ErrorDetail) {
	bad := func(msg string) (string, *huma.ErrorDetail) {
		return "", &huma.ErrorDetail{Location: location, Message: msg, Value: raw}
	}
	if strings.Contains(raw, "*") {
		return bad("wildcard domains are not supported yet: add each host name")
	}
	if strings.TrimSpace(raw) != raw || raw == "" {
		return bad("a host name has no spaces")
	}
	if strings.HasSuffix(raw, ".") {
		return bad("write the host name without its trailing dot")
	}
	ascii, err := idna.Lookup.ToASCII(raw)
	if err != nil {
		return bad("not a valid host name: letters, digits and '-' in dot-separated labels")
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > 253 {
		return bad("a host name has at most 253 characters")
	}
	if !contract.IsHostName(ascii) {
		return bad("not a valid host name: letters, digits and '-' in dot-separated labels of at most 63 characters, not starting or ending with '-', and not an IP address")
	}
	if !strings.Contains(ascii, ".") {
		return bad("a custom domain has at least two labels, such as example.com")
	}
	if pd := strings.ToLower(s.cfg.PlatformDomain); pd != "" && (ascii == pd || strings.HasSuffix(ascii, "."+pd)) {
		return bad("names under " + pd + " are the platform's: every app already serves on <name>." + pd)
	}
	return ascii, nil
}

// triggerCertificates runs the certificates schedule now.
func (s *Server) triggerCertificates(ctx context.Context) error {
	if s.temporal == nil {
		return nil
	}
	return sptemporal.TriggerCertificateCheck(ctx, s.temporal)
}
