package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/control/certs"
	"github.com/skypanel/skypanel/activities/node/acme"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

var testPrepared = certs.Prepared{Hostname: "www.example.com", AppID: testAppID, NodeID: "node-1", DirectoryURL: "https://ca.example/dir",
	AccountKeySealed: "v1:k1:sealed-account", CertKeySealed: "v1:k1:sealed-cert"}

// An issuance orders the certificate on the app's node, records it, then installs it there with
// its key still sealed: no key travels in the clear.
func TestIssueCertificateOrdersRecordsAndInstalls(t *testing.T) {
	env := newTestEnv()
	notAfter := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	env.OnActivity(certActs.PrepareCertificate, mock.Anything, certs.PrepareInput{Hostname: "www.example.com"}).Return(testPrepared, nil).Once()
	env.OnActivity(acmeActs.ObtainCertificate, mock.Anything, mock.MatchedBy(func(in acme.ObtainInput) bool {
		return in.Hostname == "www.example.com" && in.CertKeySealed == testPrepared.CertKeySealed && in.AccountKeySealed == testPrepared.AccountKeySealed
	})).Return(acme.ObtainResult{CertificatePEM: "PEM", Serial: "abc", NotAfter: notAfter, AccountURI: "https://ca.example/acct/1", KeySealedForNode: "v1:n1:node-sealed"}, nil).Once()
	env.OnActivity(certActs.RecordCertificate, mock.Anything, mock.MatchedBy(func(in certs.RecordInput) bool {
		return in.CertificatePEM == "PEM" && in.CertKeySealed == testPrepared.CertKeySealed && in.NodeID == "node-1" && in.NotAfter.Equal(notAfter)
	})).Return(nil).Once()
	env.OnActivity(nginxActs.InstallCertificate, mock.Anything, mock.MatchedBy(func(in nginx.InstallCertificateInput) bool {
		return in.Hostname == "www.example.com" && in.CertificatePEM == "PEM" && in.KeySealed == "v1:n1:node-sealed"
	})).Return(nginx.InstallCertificateResult{Served: true}, nil).Once()
	forbidActivities(t, env, certActs.RecordCertificateFailure)

	env.ExecuteWorkflow(IssueCertificate, IssueCertificateInput{Hostname: "www.example.com"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// A refusal by the CA is recorded on the domain with the CA's words and the failures so far (the
// backoff's step); nothing is installed, and the ACME order is not retried at once.
func TestIssueCertificateRecordsTheCAsRefusal(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(certActs.PrepareCertificate, mock.Anything, mock.Anything).Return(testPrepared, nil).Once()
	env.OnActivity(acmeActs.ObtainCertificate, mock.Anything, mock.Anything).
		Return(acme.ObtainResult{}, temporal.NewNonRetryableApplicationError("urn:ietf:params:acme:error:connection :: Connection refused", acme.ErrTypeRefused, nil)).Once()
	env.OnActivity(certActs.RecordCertificateFailure, mock.Anything, mock.MatchedBy(func(in certs.FailureInput) bool {
		return in.Hostname == "www.example.com" && in.Failures == 2 && len(in.Message) > 0
	})).Return(nil).Once()
	forbidActivities(t, env, certActs.RecordCertificate, nginxActs.InstallCertificate)

	env.ExecuteWorkflow(IssueCertificate, IssueCertificateInput{Hostname: "www.example.com", Failures: 2})
	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// A domain that is no longer served (removed, or its app unplaced) ends the issuance quietly.
func TestIssueCertificateOfADomainNotServedDoesNothing(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(certActs.PrepareCertificate, mock.Anything, mock.Anything).
		Return(certs.Prepared{}, temporal.NewNonRetryableApplicationError("the domain was removed", certs.ErrTypeNotServed, nil)).Once()
	forbidActivities(t, env, acmeActs.ObtainCertificate, certActs.RecordCertificateFailure, nginxActs.InstallCertificate)

	env.ExecuteWorkflow(IssueCertificate, IssueCertificateInput{Hostname: "gone.example.com"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
}

// The schedule's run starts one issuance per due domain, which outlives it.
func TestRenewCertificatesStartsAnIssuancePerDueDomain(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflow(IssueCertificate)
	env.OnActivity(certActs.CertificatesDue, mock.Anything, mock.Anything).Return(certs.DueResult{Domains: []certs.Due{
		{Hostname: "a.example.com", AppID: testAppID, NodeID: "node-1"},
		{Hostname: "b.example.com", AppID: testAppID, NodeID: "node-1", Renewal: true, Failures: 1},
	}}, nil).Once()
	env.OnWorkflow(IssueCertificate, mock.Anything, IssueCertificateInput{Hostname: "a.example.com"}).Return(nil).Once()
	env.OnWorkflow(IssueCertificate, mock.Anything, IssueCertificateInput{Hostname: "b.example.com", Renewal: true, Failures: 1}).Return(nil).Once()

	env.ExecuteWorkflow(RenewCertificates, RenewCertificatesInput{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var out RenewCertificatesResult
	require.NoError(t, env.GetWorkflowResult(&out))
	require.Equal(t, []string{"a.example.com", "b.example.com"}, out.Started)
	env.AssertExpectations(t)
}

// A moved app's certificate is installed on its new node with its key re-sealed there, and its
// place recorded: no order, no CA.
func TestIssueCertificateOfAMovedAppTransfersIt(t *testing.T) {
	env := newTestEnv()
	env.OnActivity(certActs.CurrentCertificate, mock.Anything, certs.InstalledInput{Hostname: "www.example.com"}).
		Return(certs.Installable{Hostname: "www.example.com", AppID: testAppID, NodeID: "node-2", CertificatePEM: "PEM", KeySealed: "v1:k1:platform-sealed"}, nil).Once()
	env.OnActivity(acmeActs.ResealCertificateKey, mock.Anything, acme.ResealInput{AppID: testAppID, Hostname: "www.example.com", KeySealed: "v1:k1:platform-sealed"}).
		Return(acme.ResealResult{KeySealedForNode: "v1:n2:node-sealed"}, nil).Once()
	env.OnActivity(nginxActs.InstallCertificate, mock.Anything, nginx.InstallCertificateInput{AppID: testAppID, Hostname: "www.example.com", CertificatePEM: "PEM", KeySealed: "v1:n2:node-sealed"}).
		Return(nginx.InstallCertificateResult{Served: true}, nil).Once()
	env.OnActivity(certActs.RecordInstalled, mock.Anything, certs.InstalledRecord{Hostname: "www.example.com", AppID: testAppID, NodeID: "node-2"}).Return(nil).Once()
	forbidActivities(t, env, certActs.PrepareCertificate, acmeActs.ObtainCertificate, certActs.RecordCertificate)

	env.ExecuteWorkflow(IssueCertificate, IssueCertificateInput{Hostname: "www.example.com", Renewal: true, Moved: true})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
