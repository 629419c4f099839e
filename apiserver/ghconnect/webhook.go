package ghconnect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-github/v62/github"

	"github.com/skypanel/skypanel/activities/contract"
)

// SignatureHeader carries GitHub's HMAC-SHA256 of a webhook body under the hook's secret.
const SignatureHeader = "X-Hub-Signature-256"

var (
	// ErrNoSignature: the delivery carries no signature (or the hook has no secret to check it
	// against). Never accept such a delivery: anyone can POST to the hook URL.
	ErrNoSignature = errors.New("github webhook: no signature")
	// ErrBadSignature: the signature is malformed or does not match the body.
	ErrBadSignature = errors.New("github webhook: bad signature")
)

// VerifySignature checks header (X-Hub-Signature-256, "sha256=<hex>") against the HMAC-SHA256 of
// body under secret, in constant time. An empty secret never verifies: an HMAC under an empty
// key is one anybody can compute.
func VerifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify against", ErrNoSignature)
	}
	if header == "" {
		return ErrNoSignature
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: not sha256=<hex>", ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: not sha256=<hex>", ErrBadSignature)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// PushEvent is what a deployment needs of a push delivery.
type PushEvent struct {
	Ref, Branch, Before, After                    string
	RepositoryFullName, HeadCommitMessage, Pusher string
	// Deleted: the ref was deleted; After is then all zeros and there is nothing to deploy.
	Deleted bool
}

// ParsePush decodes a push delivery's body. Branch is the branch name for refs/heads/ pushes and
// empty for tags (or any other ref). After must be a full lowercase commit id unless the push
// deleted the ref: it is handed to git, so nothing else gets through.
func ParsePush(body []byte) (PushEvent, error) {
	var ev github.PushEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return PushEvent{}, fmt.Errorf("github push event: %w", err)
	}
	p := PushEvent{
		Ref:                ev.GetRef(),
		Before:             ev.GetBefore(),
		After:              ev.GetAfter(),
		RepositoryFullName: ev.GetRepo().GetFullName(),
		HeadCommitMessage:  ev.GetHeadCommit().GetMessage(),
		Deleted:            ev.GetDeleted(),
	}
	if ev.Pusher != nil {
		p.Pusher = ev.Pusher.GetName()
		if p.Pusher == "" {
			p.Pusher = ev.Pusher.GetLogin()
		}
	}
	if p.Ref == "" {
		return PushEvent{}, errors.New("github push event: no ref")
	}
	if p.RepositoryFullName == "" {
		return PushEvent{}, errors.New("github push event: no repository.full_name")
	}
	p.Branch, _ = strings.CutPrefix(p.Ref, "refs/heads/")
	if p.Branch == p.Ref {
		p.Branch = ""
	}
	if !p.Deleted && !contract.ValidCommit(p.After) {
		return PushEvent{}, fmt.Errorf("github push event: after %q is not a full commit id (40 or 64 lower-case hex digits)", truncate(p.After, 64))
	}
	return p, nil
}

// truncate keeps an attacker-sized value out of error messages and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
