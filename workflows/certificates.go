package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/certs"
	"github.com/skypanel/skypanel/activities/node/acme"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

var (
	certActs *certs.Activities
	acmeActs *acme.Activities
)

// RenewCertificatesInput is empty: the schedule starts a run with nothing to say.
type RenewCertificatesInput struct{}

// RenewCertificatesResult names the issuances a run started.
type RenewCertificatesResult struct {
	Started []string
}

// certificateLease is how long a domain a run picked is not picked again: its issuance's time.
const certificateLease = 15 * time.Minute

// RenewCertificates is what the certificates schedule starts (daily, and at once after a domain
// is added): it lists the custom domains that need a certificate now (none yet, a failed attempt
// whose backoff has passed, or one due for renewal) and starts an IssueCertificate for each,
// which outlives this run.
func RenewCertificates(ctx workflow.Context, in RenewCertificatesInput) (RenewCertificatesResult, error) {
	var out RenewCertificatesResult
	var due certs.DueResult
	if err := workflow.ExecuteActivity(controlContext(ctx), certActs.CertificatesDue, certs.DueInput{Limit: 50, Lease: certificateLease}).Get(ctx, &due); err != nil {
		return out, err
	}
	for _, d := range due.Domains {
		childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            CertificateWorkflowID(d.Hostname, d.PickedAt),
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowRunTimeout:    certificateLease,
		})
		child := workflow.ExecuteChildWorkflow(childCtx, IssueCertificate, IssueCertificateInput{Hostname: d.Hostname, Renewal: d.Renewal, Failures: d.Failures, Moved: d.Moved})
		if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("start a certificate issuance", "domain", d.Hostname, "error", err)
			continue
		}
		out.Started = append(out.Started, d.Hostname)
	}
	return out, nil
}

// IssueCertificateInput names the domain.
type IssueCertificateInput struct {
	Hostname string
	// Renewal: the domain has a certificate already (it keeps serving it if this fails).
	Renewal bool
	// Failures is how many attempts in a row failed before this one (the backoff's step).
	Failures int
	// Moved: the certificate is good but on a node the app has left: it is installed on the
	// app's node (transferCertificate), not ordered again.
	Moved bool
}

// IssueCertificate obtains a certificate for one custom domain and installs it where the domain
// is served:
//
//	certs.PrepareCertificate   control   the ACME account (made once) and a new key, sealed
//	acme.ObtainCertificate     node      the ACME order, HTTP-01 answered by the node's nginx
//	certs.RecordCertificate    control   the certificate, its key sealed, when to renew it
//	nginx.InstallCertificate   node      the files at the domain's stable path; HTTPS on (the key
//	                                     sealed for the node by the order step)
//
// A refusal by the CA is recorded on the domain with the CA's words, and the next attempt waits
// its backoff (certs.Config.RetryBase): the schedule starts it, with no API call.
func IssueCertificate(ctx workflow.Context, in IssueCertificateInput) error {
	if in.Moved {
		return transferCertificate(ctx, in.Hostname)
	}
	var p certs.Prepared
	err := workflow.ExecuteActivity(controlContext(ctx), certActs.PrepareCertificate, certs.PrepareInput{Hostname: in.Hostname}).Get(ctx, &p)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == certs.ErrTypeNotServed {
		workflow.GetLogger(ctx).Info("no certificate: the domain is not served", "domain", in.Hostname, "reason", appErr.Error())
		return nil
	}
	if err != nil {
		return err
	}
	// One attempt: a CA counts failed validations against its rate limits, so a retry waits for
	// the backoff, not for the activity's retry policy.
	var got acme.ObtainResult
	err = workflow.ExecuteActivity(nodeContext(ctx, p.NodeID, 3*time.Minute, 30*time.Second, 1), acmeActs.ObtainCertificate, acme.ObtainInput{
		AppID: p.AppID, Hostname: p.Hostname, DirectoryURL: p.DirectoryURL, Email: p.Email,
		AccountKeySealed: p.AccountKeySealed, AccountURI: p.AccountURI, CertKeySealed: p.CertKeySealed,
	}).Get(ctx, &got)
	if err != nil {
		if recErr := workflow.ExecuteActivity(controlContext(ctx), certActs.RecordCertificateFailure, certs.FailureInput{
			Hostname: p.Hostname, AppID: p.AppID, Message: failureReason(err), Failures: in.Failures,
		}).Get(ctx, nil); recErr != nil {
			workflow.GetLogger(ctx).Error("record a failed certificate attempt", "domain", p.Hostname, "error", recErr)
		}
		return err
	}
	if err := workflow.ExecuteActivity(controlContext(ctx), certActs.RecordCertificate, certs.RecordInput{
		Hostname: p.Hostname, AppID: p.AppID, NodeID: p.NodeID, DirectoryURL: p.DirectoryURL, AccountURI: got.AccountURI,
		CertificatePEM: got.CertificatePEM, CertKeySealed: p.CertKeySealed, Serial: got.Serial,
		NotBefore: got.NotBefore, NotAfter: got.NotAfter, RenewAfter: got.RenewAfter,
	}).Get(ctx, nil); err != nil {
		return err
	}
	// The key, sealed for the node that ordered it (the same node installs it).
	return workflow.ExecuteActivity(nodeContext(ctx, p.NodeID, 2*time.Minute, 45*time.Second, 5), nginxActs.InstallCertificate, nginx.InstallCertificateInput{
		AppID: p.AppID, Hostname: p.Hostname, CertificatePEM: got.CertificatePEM, KeySealed: got.KeySealedForNode,
	}).Get(ctx, nil)
}

// transferCertificate installs a domain's issued certificate on the node its app is on now (the
// app moved): the node has the key re-sealed for itself, installs it, and the control plane
// records where it is. No CA is asked: a move costs no issuance.
func transferCertificate(ctx workflow.Context, hostname string) error {
	var c certs.Installable
	if err := workflow.ExecuteActivity(controlContext(ctx), certActs.CurrentCertificate, certs.InstalledInput{Hostname: hostname}).Get(ctx, &c); err != nil {
		return err
	}
	if c.CertificatePEM == "" || c.NodeID == "" {
		return nil // removed, or no longer placed
	}
	nodeCtx := nodeContext(ctx, c.NodeID, 2*time.Minute, 45*time.Second, 5)
	var resealed acme.ResealResult
	if err := workflow.ExecuteActivity(nodeCtx, acmeActs.ResealCertificateKey, acme.ResealInput{
		AppID: c.AppID, Hostname: hostname, KeySealed: c.KeySealed,
	}).Get(ctx, &resealed); err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(nodeCtx, nginxActs.InstallCertificate, nginx.InstallCertificateInput{
		AppID: c.AppID, Hostname: hostname, CertificatePEM: c.CertificatePEM, KeySealed: resealed.KeySealedForNode,
	}).Get(ctx, nil); err != nil {
		return err
	}
	return workflow.ExecuteActivity(controlContext(ctx), certActs.RecordInstalled, certs.InstalledRecord{
		Hostname: hostname, AppID: c.AppID, NodeID: c.NodeID,
	}).Get(ctx, nil)
}
