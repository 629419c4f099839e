package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/workflows"
)

type walletOutput struct {
	Body Wallet
}

type transactionsInput struct {
	Before int64 `query:"before" minimum:"0" doc:"Return entries older than this id (the previous page's next_before)"`
	Limit  int   `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type transactionsOutput struct {
	Body struct {
		Items []LedgerEntry `json:"items"`
		// NextBefore, when set, fetches the next (older) page.
		NextBefore int64 `json:"next_before,omitempty"`
	}
}

type creditInput struct {
	OrgID string `path:"orgId" maxLength:"64"`
	Body  struct {
		Amount    int64  `json:"amount" minimum:"1" doc:"Minor units (cents), a positive integer"`
		Reference string `json:"reference" minLength:"1" maxLength:"200" doc:"The payment or invoice this credit is for; the same reference twice credits once"`
	}
}

type creditOutput struct {
	Status int
	Body   struct {
		Entry   LedgerEntry `json:"entry"`
		Balance int64       `json:"balance"`
		// Resuming is the workflow resuming the organization's suspended apps, when the credit
		// made its wallet pay for them again.
		Resuming string `json:"resuming_workflow_id,omitempty"`
	}
}

func (s *Server) registerWallet() {
	huma.Register(s.api, s.op("get-wallet", http.MethodGet, "/api/paas/wallet",
		"Your organization's prepaid balance (minor units)", "billing", 0, false),
		func(ctx context.Context, _ *struct{}) (*walletOutput, error) {
			w, err := s.store.GetWallet(ctx, principal(ctx).OrgID)
			if err != nil {
				return nil, s.problem(ctx, "wallet", err)
			}
			return &walletOutput{Body: walletView(w)}, nil
		})
	huma.Register(s.api, s.op("list-wallet-transactions", http.MethodGet, "/api/paas/wallet/transactions",
		"Your organization's credits and charges, newest first", "billing", 0, false),
		func(ctx context.Context, in *transactionsInput) (*transactionsOutput, error) {
			entries, err := s.store.ListLedger(ctx, principal(ctx).OrgID, in.Before, in.Limit)
			if err != nil {
				return nil, s.problem(ctx, "wallet", err)
			}
			out := &transactionsOutput{}
			out.Body.Items = viewsOf(entries, ledgerEntryView)
			if len(entries) == in.Limit {
				out.Body.NextBefore = entries[len(entries)-1].ID
			}
			return out, nil
		})
	huma.Register(s.api, s.op("credit-wallet", http.MethodPost, "/api/paas/admin/organizations/{orgId}/wallet/credit",
		"Top up an organization's wallet; the same reference twice credits once", "admin", http.StatusCreated, true),
		s.creditWallet)
}

func (s *Server) creditWallet(ctx context.Context, in *creditInput) (*creditOutput, error) {
	entry, created, err := s.store.Credit(ctx, in.OrgID, in.Body.Amount, in.Body.Reference)
	if errors.Is(err, db.ErrNotFound) {
		return nil, huma.Error404NotFound("organization not found", &huma.ErrorDetail{Location: "path.orgId", Value: in.OrgID})
	}
	if err != nil {
		return nil, s.problem(ctx, "wallet", err)
	}
	wallet, err := s.store.GetWallet(ctx, in.OrgID)
	if err != nil {
		return nil, s.problem(ctx, "wallet", err)
	}
	out := &creditOutput{Status: http.StatusCreated}
	if !created {
		out.Status = http.StatusOK
	}
	out.Body.Entry, out.Body.Balance = ledgerEntryView(entry), wallet.Balance
	s.log.InfoContext(ctx, "wallet credited", "org_id", in.OrgID, "amount", in.Body.Amount, "created", created, "admin_user_id", principal(ctx).UserID)
	// The credit is recorded whatever happens next; resuming is best effort here, and the next
	// billing run resumes the apps anyway.
	if id, err := s.resumeIfPaid(ctx, in.OrgID); err != nil {
		s.log.WarnContext(ctx, "resume after credit", "org_id", in.OrgID, "error", err)
	} else {
		out.Body.Resuming = id
	}
	return out, nil
}

// resumeIfPaid starts ResumeOrganization when the organization has suspended apps or databases
// and its wallet now pays one period of them. An already running resumption is fine.
func (s *Server) resumeIfPaid(ctx context.Context, orgID string) (string, error) {
	resumable, err := s.store.CanResume(ctx, orgID, s.cfg.BillingPeriod)
	if err != nil || !resumable {
		return "", err
	}
	workflowID := workflows.ResumeOrganizationWorkflowID(orgID)
	_, err = s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflowID,
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			sptemporal.OrgIDKey.ValueSet(orgID), sptemporal.OperationKey.ValueSet("resume")),
	}, workflows.ResumeOrganization, workflows.OrganizationInput{OrgID: orgID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return "", err
	}
	return workflowID, nil
}
