package workernode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/activities/node/acme"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/secrets"
)

// nodeSecrets opens apps' values with the node's own keys: the API re-seals a task's values
// under the node's newest key (only for an app placed on this node), and the node opens them.
// The keys live in memory only, fetched from the API at start and again after a rotation.
type nodeSecrets struct {
	api *APIClient // authenticated as the node

	mu   sync.Mutex
	ring *secrets.Keyring
}

type sealedVarJSON struct {
	Key       string `json:"key"`
	Sealed    string `json:"sealed"`
	BuildTime bool   `json:"build_time,omitempty"`
}

// keyring is the node's keyring, fetched when there is none yet or refresh is set.
func (n *nodeSecrets) keyring(ctx context.Context, refresh, rotate bool) (*secrets.Keyring, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ring != nil && !refresh && !rotate {
		return n.ring, nil
	}
	var out struct {
		Keyring string `json:"keyring"`
	}
	if err := n.api.post(ctx, "/api/paas/agent/keys", map[string]bool{"rotate": rotate}, &out); err != nil {
		return nil, fmt.Errorf("fetch the node's keys: %w", err)
	}
	ring, err := secrets.ParseKeyring(out.Keyring)
	if err != nil {
		// ParseKeyring never echoes key material.
		return nil, fmt.Errorf("the node's keys from the API: %w", err)
	}
	n.ring = ring
	return ring, nil
}

// fetch gets the node's keys at start, retrying while the API is unreachable: without them
// the node can open none of its tasks.
func (n *nodeSecrets) fetch(ctx context.Context) error {
	delay := time.Second
	for {
		_, err := n.keyring(ctx, true, false)
		if err == nil || !retryable(err) {
			return err
		}
		slog.WarnContext(ctx, "fetch the node's keys: API not reachable, retrying", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// current is the node's keyring now (fetched at start; a rotation replaces it), for the
// Temporal payload codec.
func (n *nodeSecrets) current() *secrets.Keyring {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ring
}

// rotate makes the node a new key and takes it into use (with its certificate's renewal).
func (n *nodeSecrets) rotate(ctx context.Context) error {
	_, err := n.keyring(ctx, false, true)
	return err
}

// OpenEnv asks the API to re-seal vars under this node's key, then opens them.
func (n *nodeSecrets) OpenEnv(ctx context.Context, appID string, vars []docker.SealedVar) (map[string]string, error) {
	in := struct {
		AppID string          `json:"app_id"`
		Vars  []sealedVarJSON `json:"vars"`
	}{AppID: appID, Vars: make([]sealedVarJSON, len(vars))}
	for i, v := range vars {
		in.Vars[i] = sealedVarJSON{Key: v.Key, Sealed: v.Sealed, BuildTime: v.BuildTime}
	}
	var out struct {
		Vars []sealedVarJSON `json:"vars"`
	}
	if err := n.api.post(ctx, "/api/paas/agent/env/open", in, &out); err != nil {
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			// Not placed here, a value of another app, a revoked node: asking again changes nothing.
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the control plane did not open the app's environment for this node (HTTP %d): %s", se.Status, problemDetail(se)),
				docker.ErrTypeSecretUnavailable, nil)
		}
		return nil, fmt.Errorf("open the app's environment: %w", err)
	}
	resealed := make([]docker.SealedVar, len(out.Vars))
	for i, v := range out.Vars {
		resealed[i] = docker.SealedVar{Key: v.Key, Sealed: v.Sealed, BuildTime: v.BuildTime}
	}
	ring, err := n.keyring(ctx, false, false)
	if err != nil {
		return nil, err
	}
	env, err := docker.OpenSealed(ring, appID, resealed)
	if errors.Is(err, secrets.ErrUnknownKey) {
		// Rotated since this node fetched its keys: fetch them again, once.
		if ring, err = n.keyring(ctx, true, false); err == nil {
			env, err = docker.OpenSealed(ring, appID, resealed)
		}
	}
	return env, err
}

// OpenDatabasePassword asks the API to re-seal a managed database's password under this node's
// newest key (only for a database placed here), then opens it. Errors never quote the value.
func (n *nodeSecrets) OpenDatabasePassword(ctx context.Context, databaseID, sealed string) (string, error) {
	in := map[string]string{"database_id": databaseID, "sealed": sealed}
	var out struct {
		Sealed string `json:"sealed"`
	}
	if err := n.api.post(ctx, "/api/paas/agent/databases/open", in, &out); err != nil {
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			// Not placed here, another database's value, a revoked node: asking again changes nothing.
			return "", temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the control plane did not open the password of database %s for this node (HTTP %d): %s", databaseID, se.Status, problemDetail(se)),
				docker.ErrTypeSecretUnavailable, nil)
		}
		return "", fmt.Errorf("open the password of database %s: %w", databaseID, err)
	}
	ring, err := n.keyring(ctx, false, false)
	if err != nil {
		return "", err
	}
	password, err := docker.OpenSealedPassword(ring, databaseID, out.Sealed)
	if errors.Is(err, secrets.ErrUnknownKey) {
		// Rotated since this node fetched its keys: fetch them again, once.
		if ring, err = n.keyring(ctx, true, false); err == nil {
			password, err = docker.OpenSealedPassword(ring, databaseID, out.Sealed)
		}
	}
	return password, err
}

// OpenGitHubToken asks the API for the GitHub token of the user who connected app appID, sealed
// under this node's newest key for deployment deploymentID only (the API answers only for an
// app placed here), then opens it. A refusal (GitHub disconnected, the app not here) carries
// the API's words, which say what to do. Errors never quote the token.
func (n *nodeSecrets) OpenGitHubToken(ctx context.Context, appID, deploymentID string) (string, error) {
	in := map[string]string{"app_id": appID, "deployment_id": deploymentID}
	var out struct {
		Sealed string `json:"sealed"`
	}
	if err := n.api.post(ctx, "/api/paas/agent/github/clone-token", in, &out); err != nil {
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			// GitHub disconnected, an app placed elsewhere, a revoked node: asking again changes
			// nothing until someone acts.
			return "", temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the control plane gave this node no GitHub token to clone app %s (HTTP %d): %s", appID, se.Status, refusalDetail(se)),
				gitclone.ErrTypeCredentials, nil)
		}
		return "", fmt.Errorf("fetch the GitHub token to clone app %s: %w", appID, err)
	}
	token, err := n.Open(ctx, out.Sealed, secrets.GitHubCloneToken(deploymentID))
	switch {
	case err == nil:
		return string(token), nil
	case errors.Is(err, secrets.ErrMalformed), errors.Is(err, secrets.ErrTampered), errors.Is(err, secrets.ErrUnknownKey):
		// Sealed for another deployment or under a key this node does not hold: the same answer
		// would come again.
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the GitHub token the control plane sent for deployment %s does not open: %s", deploymentID, secrets.Explain(err)),
			gitclone.ErrTypeCredentials, nil)
	}
	return "", fmt.Errorf("open the GitHub token for deployment %s: %w", deploymentID, err) // the node's keys: a retry may do
}

// Open opens a value sealed under this node's key with label (a certificate's key the control
// plane sealed for this node). The errors are the secrets package's (ErrUnknownKey, ErrTampered,
// ErrMalformed) or a failure to fetch the keys; none quotes the value.
func (n *nodeSecrets) Open(ctx context.Context, sealed string, label []byte) ([]byte, error) {
	ring, err := n.keyring(ctx, false, false)
	if err != nil {
		return nil, err
	}
	plain, err := ring.Decrypt(sealed, label)
	if errors.Is(err, secrets.ErrUnknownKey) {
		// Rotated since this node fetched its keys: fetch them again, once.
		if ring, err = n.keyring(ctx, true, false); err == nil {
			plain, err = ring.Decrypt(sealed, label)
		}
	}
	return plain, err
}

// Seal seals plain under the node's newest key, bound to label.
func (n *nodeSecrets) Seal(ctx context.Context, plain, label []byte) (string, error) {
	ring, err := n.keyring(ctx, false, false)
	if err != nil {
		return "", err
	}
	return ring.Encrypt(plain, label)
}

// refusalDetail is the detail field of an API problem answer, whatever its 4xx status (the
// reason to reconnect GitHub may come as a 404 or a 409, which problemDetail leaves out); an
// answer that is not problem JSON (a proxy's page) falls back to problemDetail.
func refusalDetail(se *StatusError) string {
	var problem struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal([]byte(se.Body), &problem) == nil && problem.Detail != "" {
		return problem.Detail
	}
	return problemDetail(se)
}

// problemDetail is the detail of an API problem answer, or its start.
func problemDetail(se *StatusError) string {
	if se.Status == http.StatusForbidden || se.Status == http.StatusUnprocessableEntity || se.Status == http.StatusUnauthorized {
		return se.Body
	}
	return http.StatusText(se.Status)
}

// OpenCertificateKeys asks the API to re-seal a custom domain's certificate keys under this
// node's key (only for a domain of an app placed here), then opens them.
func (n *nodeSecrets) OpenCertificateKeys(ctx context.Context, req acme.KeysRequest) (accountKeyPEM, certKeyPEM []byte, err error) {
	in := map[string]string{"app_id": req.AppID, "hostname": req.Hostname, "directory_url": req.DirectoryURL,
		"account_key": req.AccountKeySealed, "certificate_key": req.CertKeySealed}
	var out struct {
		AccountKey     string `json:"account_key"`
		CertificateKey string `json:"certificate_key"`
	}
	if err := n.api.post(ctx, "/api/paas/agent/certificates/open", in, &out); err != nil {
		var se *StatusError
		if errors.As(err, &se) && !se.Temporary() {
			return nil, nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the control plane did not open the certificate keys of %s for this node (HTTP %d): %s", req.Hostname, se.Status, problemDetail(se)),
				docker.ErrTypeSecretUnavailable, nil)
		}
		return nil, nil, fmt.Errorf("open the certificate keys of %s: %w", req.Hostname, err)
	}
	open := func(sealed string, label []byte) ([]byte, error) {
		if sealed == "" {
			return nil, nil
		}
		plain, err := n.Open(ctx, sealed, label)
		switch {
		case err == nil:
			return plain, nil
		case errors.Is(err, secrets.ErrMalformed), errors.Is(err, secrets.ErrTampered), errors.Is(err, secrets.ErrUnknownKey):
			return nil, temporal.NewNonRetryableApplicationError("a certificate key of "+req.Hostname+" does not open: "+secrets.Explain(err),
				docker.ErrTypeSecretUnavailable, nil)
		}
		return nil, err // the node's keys could not be fetched: a retry may do
	}
	if accountKeyPEM, err = open(out.AccountKey, secrets.ACMEAccountKey(req.DirectoryURL)); err != nil {
		return nil, nil, err
	}
	if certKeyPEM, err = open(out.CertificateKey, secrets.CertificateKey(req.Hostname)); err != nil {
		clear(accountKeyPEM)
		return nil, nil, err
	}
	return accountKeyPEM, certKeyPEM, nil
}
