package docker

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/secrets"
)

// ErrTypeSecretUnavailable: a sealed value cannot be opened on this node (no keyring, a key
// removed before re-encryption finished, or a tampered value). Retrying does not help.
const ErrTypeSecretUnavailable = "SecretUnavailable"

func validateSealedVars(vars []SealedVar) error {
	seen := make(map[string]bool, len(vars))
	for _, v := range vars {
		if !envKeyPattern.MatchString(v.Key) {
			return invalidInput("invalid environment variable name %q: use A-Z, 0-9 and '_', not starting with a digit", v.Key)
		}
		if seen[v.Key] {
			return invalidInput("environment variable %s is given twice", v.Key)
		}
		seen[v.Key] = true
	}
	return nil
}

// NodeSecrets opens an app's values, and a managed database's password, on a node that holds
// no platform key: the API re-seals them under the node's own key, for an app or database
// placed on the node only (the agent's implementation, worker-node).
type NodeSecrets interface {
	OpenEnv(ctx context.Context, appID string, vars []SealedVar) (map[string]string, error)
	// OpenDatabasePassword opens the password of databaseID, sealed under the platform key
	// with secrets.DatabasePassword(databaseID). Errors never quote the value.
	OpenDatabasePassword(ctx context.Context, databaseID, sealed string) (string, error)
}

// OpenSealed opens appID's vars with ring. A value that does not open (another app's, a key
// ring lacks, a modified value) is a non-retryable SecretUnavailable naming the variable, never
// the value; its cause stays reachable (errors.Is(err, secrets.ErrUnknownKey)).
func OpenSealed(ring *secrets.Keyring, appID string, vars []SealedVar) (map[string]string, error) {
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		plain, err := ring.Decrypt(v.Sealed, secrets.AppEnvValue(appID, v.Key))
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("environment variable %s cannot be opened on this node: %s", v.Key, secrets.Explain(err)),
				ErrTypeSecretUnavailable, err)
		}
		env[v.Key] = string(plain)
	}
	return env, nil
}

// OpenSealedPassword opens a managed database's password with ring. A value that does not open
// (another database's, a key ring lacks, a modified value) is a non-retryable SecretUnavailable
// naming the database, never the value; its cause stays reachable (errors.Is(err,
// secrets.ErrUnknownKey)).
func OpenSealedPassword(ring *secrets.Keyring, databaseID, sealed string) (string, error) {
	plain, err := ring.Decrypt(sealed, secrets.DatabasePassword(databaseID))
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the password of database %s cannot be opened on this node: %s", databaseID, secrets.Explain(err)),
			ErrTypeSecretUnavailable, err)
	}
	return string(plain), nil
}

// openEnv opens the app's sealed variables (only the build-time ones when buildTime is set)
// through the node's own key (Secrets). Errors name the variable and the cause, never a value;
// the caller drops the map once the container or build has it.
func (a *Activities) openEnv(ctx context.Context, appID string, vars []SealedVar, buildTime bool) (map[string]string, error) {
	wanted := make([]SealedVar, 0, len(vars))
	for _, v := range vars {
		if !buildTime || v.BuildTime {
			wanted = append(wanted, v)
		}
	}
	if len(wanted) == 0 {
		return map[string]string{}, nil
	}
	if a.Secrets == nil {
		return nil, temporal.NewNonRetryableApplicationError(
			"this node has no way to open the app's environment (no node keys)", ErrTypeSecretUnavailable, nil)
	}
	env, err := a.Secrets.OpenEnv(ctx, appID, wanted)
	if err != nil {
		return nil, err
	}
	for _, v := range wanted {
		value, ok := env[v.Key]
		if !ok {
			return nil, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("environment variable %s was not opened", v.Key), ErrTypeSecretUnavailable, nil)
		}
		if strings.ContainsRune(value, 0) {
			return nil, invalidInput("environment variable %s contains a NUL character", v.Key)
		}
	}
	return env, nil
}
