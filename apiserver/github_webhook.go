package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/apiserver/ghconnect"
	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/operations"
)

// The webhook secret is the platform's, one for every repository: GitHub signs each delivery
// with the secret of the hook that sent it, and the platform creates every hook (auto-deploy)
// with this one, as a GitHub App has one webhook secret for all its installations. A secret
// per app would need the app known before the signature is checked, i.e. trusting the
// unverified body to say which secret to check it with. Without a secret every delivery is
// refused: an unsigned webhook would let anyone deploy any commit of any app.

// githubMaxPayload is GitHub's own cap on a delivery.
const githubMaxPayload = 25 << 20

var githubDeliveryPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

type githubWebhookInput struct {
	Signature string `header:"X-Hub-Signature-256" maxLength:"128"`
	Event     string `header:"X-GitHub-Event" maxLength:"64"`
	Delivery  string `header:"X-GitHub-Delivery" maxLength:"64"`
	RawBody   []byte
}

type webhookDeployment struct {
	App          string `json:"app"`
	AppID        string `json:"app_id"`
	OperationID  string `json:"operation_id,omitempty"`
	DeploymentID string `json:"deployment_id,omitempty"`
	Status       string `json:"status" doc:"queued or running: the deploy of the pushed commit; live: the app serves that commit already; refused: see error"`
	Error        string `json:"error,omitempty"`
}

type githubWebhookOutput struct {
	Status int
	Body   struct {
		Event       string              `json:"event"`
		Delivery    string              `json:"delivery"`
		Duplicate   bool                `json:"duplicate,omitempty" doc:"this delivery was taken before: nothing started"`
		Message     string              `json:"message"`
		Deployments []webhookDeployment `json:"deployments,omitempty"`
	}
}

func (s *Server) registerGitHubWebhook() {
	huma.Register(s.api, huma.Operation{OperationID: "github-webhook", Method: http.MethodPost, Path: "/api/paas/github/webhook",
		Summary:     "GitHub's deliveries: a signed push to a connected branch with auto-deploy deploys the pushed commit",
		Description: "Verified with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body under the platform's webhook secret); refused (401) when unsigned, wrongly signed, or when the platform has no secret. A delivery (`X-GitHub-Delivery`) is taken once.",
		Tags:        []string{"github"}, DefaultStatus: http.StatusAccepted, MaxBodyBytes: githubMaxPayload}, s.githubWebhook)
}

func (s *Server) githubWebhook(ctx context.Context, in *githubWebhookInput) (*githubWebhookOutput, error) {
	if len(s.cfg.GitHubWebhookSecret) == 0 {
		return nil, huma.Error401Unauthorized("webhooks are refused: this platform has no GitHub webhook secret (GITHUB_WEBHOOK_SECRET)")
	}
	if err := ghconnect.VerifySignature(s.cfg.GitHubWebhookSecret, in.RawBody, in.Signature); err != nil {
		s.log.WarnContext(ctx, "GitHub webhook refused", "delivery", in.Delivery, "event", in.Event, "why", err)
		if errors.Is(err, ghconnect.ErrNoSignature) {
			return nil, huma.Error401Unauthorized("the delivery is not signed: X-Hub-Signature-256 is required")
		}
		return nil, huma.Error401Unauthorized("the delivery's signature does not match the platform's webhook secret")
	}
	if !githubDeliveryPattern.MatchString(in.Delivery) {
		return nil, fieldError("header.X-GitHub-Delivery", "a delivery id is required (letters, digits and '-')", in.Delivery)
	}
	out := &githubWebhookOutput{Status: http.StatusAccepted}
	out.Body.Event, out.Body.Delivery = in.Event, in.Delivery
	fresh, err := s.store.RecordGitHubDelivery(ctx, in.Delivery, in.Event)
	if err != nil {
		return nil, s.problem(ctx, "github", err)
	}
	if !fresh {
		out.Status, out.Body.Duplicate, out.Body.Message = http.StatusOK, true, "this delivery was taken before: nothing started"
		return out, nil
	}
	switch in.Event {
	case "ping":
		out.Status, out.Body.Message = http.StatusOK, "pong"
		return out, nil
	case "push":
	default:
		out.Status, out.Body.Message = http.StatusOK, "ignored: only push events deploy"
		return out, nil
	}
	push, err := ghconnect.ParsePush(in.RawBody)
	if err != nil {
		return nil, huma.Error400BadRequest("the push event does not parse: " + err.Error())
	}
	if push.Deleted || push.Branch == "" {
		out.Status, out.Body.Message = http.StatusOK, "ignored: a deleted branch or a tag deploys nothing"
		return out, nil
	}
	targets, err := s.store.AppsToDeployOnPush(ctx, push.RepositoryFullName, push.Branch)
	if err != nil {
		_ = s.store.ForgetGitHubDelivery(context.WithoutCancel(ctx), in.Delivery)
		return nil, s.problem(ctx, "github", err)
	}
	queuedAny := false
	for _, t := range targets {
		d := webhookDeployment{App: t.Name, AppID: t.AppID}
		if t.LiveCommit == push.After {
			// A push of the commit already live (a re-push, a second hook): nothing to build.
			d.Status = "live"
			out.Body.Deployments = append(out.Body.Deployments, d)
			continue
		}
		op, err := s.deployApp(ctx, t.OrgID, t.AppID, t.UserID, "github", push.After)
		if err != nil {
			d.Status, d.Error = "refused", problemText(err)
			s.log.WarnContext(ctx, "push not deployed", "app_id", t.AppID, "commit", push.After, "delivery", in.Delivery, "error", d.Error)
		} else {
			queuedAny = true
			d.Status, d.OperationID = op.Status, op.ID
			if op.DeploymentID != nil {
				d.DeploymentID = *op.DeploymentID
			}
			s.log.InfoContext(ctx, "push deploys", "app_id", t.AppID, "commit", push.After, "delivery", in.Delivery, "operation_id", op.ID)
		}
		out.Body.Deployments = append(out.Body.Deployments, d)
	}
	switch {
	case len(targets) == 0:
		out.Status, out.Body.Message = http.StatusOK, fmt.Sprintf("no app deploys %s@%s on push", push.RepositoryFullName, push.Branch)
	case !queuedAny:
		out.Body.Message = "no deploy could be queued: see each app's error"
	default:
		out.Body.Message = fmt.Sprintf("deploying commit %s", push.After)
	}
	return out, nil
}

// problemText is what a refusal says (its detail), for a list of outcomes.
func problemText(err error) string {
	var se huma.StatusError
	if errors.As(err, &se) {
		if m, ok := se.(*huma.ErrorModel); ok {
			return m.Detail
		}
	}
	return err.Error()
}

// deployApp queues a deploy of app (of orgID) on behalf of userID ("" for the platform), of
// commit ("" the branch's head): the one path of the deploy button and of a push. A first
// deploy places the app now: no room on any node is a refusal here, not a deployment that
// fails later.
func (s *Server) deployApp(ctx context.Context, orgID, appID, userID, via, commit string) (db.Operation, error) {
	app, err := s.store.GetApplication(ctx, orgID, appID)
	if err != nil {
		return db.Operation{}, s.problem(ctx, "application", err)
	}
	if err := s.requireFundsOf(ctx, orgID, app.ID, 0); err != nil {
		return db.Operation{}, err
	}
	if app.GitHubRepository != "" {
		if err := s.requireCloneToken(ctx, app); err != nil {
			return db.Operation{}, err
		}
	}
	if app.NodeID == nil {
		if _, err := s.store.PlaceApplication(ctx, app.ID); err != nil {
			return db.Operation{}, s.problem(ctx, "application", err)
		}
	}
	r := operations.Request{OrgID: orgID, AppID: appID, Kind: db.OpDeploy, UserID: userID, Via: via, Commit: commit}
	op, err := s.ops.Enqueue(ctx, r)
	if err != nil {
		return db.Operation{}, s.operationProblem(ctx, r.Kind, err)
	}
	return op, nil
}

// requireCloneToken refuses a deploy of a GitHub app whose user has disconnected GitHub: its
// clone would be refused.
func (s *Server) requireCloneToken(ctx context.Context, app db.Application) error {
	userID := ""
	if app.GitHubUserID != nil {
		userID = *app.GitHubUserID
	}
	if userID != "" {
		if _, err := s.store.GitHubConnectionOf(ctx, userID); err == nil {
			return nil
		} else if !errors.Is(err, db.ErrNotFound) {
			return s.problem(ctx, "github", err)
		}
	}
	return huma.Error409Conflict(fmt.Sprintf("application %s clones %s with the GitHub token of the user who connected it, and that user has disconnected GitHub: reconnect GitHub (GET /api/paas/github/authorize), then connect the app again (PUT /api/paas/applications/%s with github_repository) or deploy again",
		app.Name, app.GitHubRepository, app.ID))
}

type cloneTokenInput struct {
	Body struct {
		AppID        string `json:"app_id" format:"uuid"`
		DeploymentID string `json:"deployment_id" minLength:"1" maxLength:"64" doc:"the running operation the clone is for (a deploy's deployment id, a heal's operation id)"`
	}
}

type cloneTokenOutput struct {
	Body struct {
		Sealed string `json:"sealed" doc:"the token of the user who connected the app, sealed under the node's newest key for this clone only"`
	}
}

// registerAgentCloneToken lets the node that runs an operation of a GitHub app clone with the
// token of the user who connected the app: re-sealed for that node and that operation only.
func (s *Server) registerAgentCloneToken() {
	op := s.nodeOp("agent-github-clone-token", http.MethodPost, "/api/paas/agent/github/clone-token",
		"The GitHub token a running clone of an app placed on the node uses, sealed for the node", http.StatusOK)
	huma.Register(s.api, op, func(ctx context.Context, in *cloneTokenInput) (*cloneTokenOutput, error) {
		nodeID, _ := ctx.Value(nodeKey).(string)
		appID, operationID := strings.ToLower(in.Body.AppID), in.Body.DeploymentID
		sealed, userID, repository, err := s.store.CloneToken(ctx, nodeID, appID, operationID)
		switch {
		case errors.Is(err, db.ErrNotYourClone):
			s.log.WarnContext(ctx, "node asked for a clone token it has no clone for", "node_id", nodeID, "app_id", appID, "deployment_id", operationID)
			return nil, huma.Error403Forbidden("no operation " + operationID + " of application " + appID + " runs on this node: its token is not this node's to open")
		case errors.Is(err, db.ErrGitHubDisconnected):
			return nil, huma.Error409Conflict("the user who connected " + repository + " to this application has disconnected GitHub: reconnect GitHub (GET /api/paas/github/authorize) and deploy again")
		case err != nil:
			return nil, s.problem(ctx, "application", err)
		}
		token, err := s.cfg.Keyring.Decrypt(sealed, secrets.GitHubToken(userID))
		if err != nil {
			return nil, fmt.Errorf("open the GitHub token of user %s: %s", userID, secrets.Explain(err))
		}
		defer clear(token)
		ring, err := s.nodeKeyring(ctx, nodeID, false)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		out := &cloneTokenOutput{}
		if out.Body.Sealed, err = ring.Encrypt(token, secrets.GitHubCloneToken(operationID)); err != nil {
			return nil, fmt.Errorf("seal the clone token for node %s: %w", nodeID, err)
		}
		s.log.InfoContext(ctx, "clone token sealed for node", "node_id", nodeID, "app_id", appID, "deployment_id", operationID)
		return out, nil
	})
}
